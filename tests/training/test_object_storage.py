"""The main job with its workdir and its image folders in a bucket (a local GCS stand-in), run by
a Python without TensorFlow or clu: it trains, checkpoints, is killed, resumes and evaluates,
`idm-jax upscale` reads and writes there too, every file lands in the bucket and nothing is
written where it runs."""
import io
import json
import pathlib
import signal
import subprocess
import time

import numpy as np
import pytest
from PIL import Image

from idm_jax.evaluation import report as report_lib
from tests import isolated_site
from tests import object_store
from tests import tensorboard_events

MICRO_CONFIG = pathlib.Path(__file__).with_name('micro_config.py')
BUCKET = object_store.BUCKET
RUN = f'gs://{BUCKET}/runs/micro'
ABSENT = ('tensorflow', 'clu', 'keras', 'tf_keras')


@pytest.fixture
def bucket(tmp_path):
  with object_store.emulator(tmp_path) as served:
    yield served


def _upload_photos(fs, folder: str, count: int, seed: int) -> None:
  """Smooth 24 x 24 PNGs (a random walk blurred), written straight into the bucket."""
  rng = np.random.default_rng(seed)
  for i in range(count):
    image = np.cumsum(np.cumsum(rng.normal(0, 8, (24, 24, 3)), 0), 1)
    image = np.clip(image - image.min() + 30, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format='PNG')
    fs.pipe(f'{folder}/img{i}.png', buffer.getvalue())


def _main(python: list[str], env: dict[str, str], cwd: pathlib.Path, *flags: str
          ) -> subprocess.Popen:
  data = [f'--config.data.path=gs://{BUCKET}/data/train',
          f'--config.data.eval.path=gs://{BUCKET}/data/eval', '--config.data.source=folder']
  return subprocess.Popen(
      python + ['-m', 'idm_jax.main', f'--config={MICRO_CONFIG}', f'--workdir={RUN}', *data,
                *flags], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
      text=True)


def _committed_steps(fs) -> list[int]:
  folder = f'{BUCKET}/runs/micro/checkpoints'
  fs.invalidate_cache()  # The listing changes under the client.
  if not fs.exists(folder):
    return []
  return sorted(int(p.rsplit('/', 1)[1]) for p in fs.ls(folder)
                if p.rsplit('/', 1)[1].isdigit() and fs.exists(f'{p}/commit_success.txt'))


def test_train_kill_resume_evaluate_in_a_bucket(tmp_path, bucket, subprocess_env):
  env, fs = bucket
  _upload_photos(fs, f'{BUCKET}/data/train', 4, seed=0)
  _upload_photos(fs, f'{BUCKET}/data/eval', 1, seed=1)
  python, env = isolated_site.python_without(ABSENT, tmp_path / 'site', {**subprocess_env, **env})
  cwd = tmp_path / 'cwd'
  cwd.mkdir()

  # A long run, killed without warning once two checkpoints are committed.
  first = _main(python, env, cwd, '--config.train.num_steps=100000',
                '--config.checkpoint.every_steps=4')
  deadline = time.time() + 300
  while len(_committed_steps(fs)) < 2:
    assert first.poll() is None, first.stdout.read()[-5000:]
    assert time.time() < deadline, 'no two checkpoints within 300 s'
    time.sleep(0.5)
  first.send_signal(signal.SIGKILL)
  first.wait()
  latest = _committed_steps(fs)[-1]

  # The same command resumes from the newest complete step and validates at its end.
  second = _main(python, env, cwd, f'--config.train.num_steps={latest + 4}',
                 '--config.checkpoint.every_steps=4', '--config.eval.at_end=True')
  output, _ = second.communicate(timeout=300)
  assert second.returncode == 0, output[-5000:]
  assert f'Resuming from step {latest}' in output, output[-5000:]
  assert _committed_steps(fs)[-1] == latest + 4

  # --mode=eval of the same workdir reproduces the final validation's report.
  third = _main(python, env, cwd, '--mode=eval')
  output, _ = third.communicate(timeout=300)
  assert third.returncode == 0, output[-5000:]

  report = json.loads(fs.cat(f'{BUCKET}/runs/micro/eval/metrics.json'))
  assert report['step'] == latest + 4 and np.isfinite(report['scales'][0]['mean']['psnr_mean'])
  validation = json.loads(fs.cat(
      f'{BUCKET}/runs/micro/validation/step_{latest + 4:08d}/metrics.json'))
  assert validation['scales'][0]['mean']['psnr_mean'] == pytest.approx(
      report['scales'][0]['mean']['psnr_mean'], abs=0.01)
  picture = Image.open(io.BytesIO(fs.cat(f'{BUCKET}/runs/micro/eval/comparison.png')))
  assert picture.size == (4 * 16 + 3 * 2, report_lib.HEADER + 16 + report_lib.CAPTION)
  assert json.loads(fs.cat(f'{BUCKET}/runs/micro/config.json'))['train']['batch_size'] == 8

  # TensorBoard reads the summaries of the resumed run from the bucket's event files.
  events = tmp_path / 'events'
  events.mkdir()
  for path in fs.glob(f'{BUCKET}/runs/micro/events.out.tfevents.*'):
    (events / path.rsplit('/', 1)[1]).write_bytes(fs.cat(path))
  tags = tensorboard_events.scalars(events)
  assert {latest + 2, latest + 4} <= {step for step, _ in tags['loss']}
  assert all(np.isfinite(v) for _, v in tags['loss'])
  assert [s for s, _ in tags['val_psnr']] == [latest + 4]
  assert tensorboard_events.read(events).Tags()['images'] == ['validation']

  # idm-jax upscale reads its input and its checkpoint from the bucket and writes back to it.
  upscale = subprocess.run(
      python + ['-m', 'idm_jax.cli.main', 'upscale', f'gs://{BUCKET}/data/eval/img0.png',
                '--checkpoint', f'{RUN}/checkpoints', '--config', str(MICRO_CONFIG),
                '--scale', '1.5', '--steps', '2', '--output', f'{RUN}/upscaled'],
      cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
  assert upscale.returncode == 0, upscale.stderr[-5000:]
  upscaled = Image.open(io.BytesIO(fs.cat(f'{BUCKET}/runs/micro/upscaled/img0_x1.5.png')))
  assert upscaled.size == (36, 36)

  assert list(cwd.iterdir()) == []  # Nothing local: no 'gs:' folder, no stray file.
