"""Two real processes joined by `jax.distributed` on localhost (gloo collectives on CPU).

The same config trains on 2 processes x 2 devices as on 1 process (each process builds its rows of
the same global batches; `test_sharding` shows 8 devices == 1 within a process), both processes
write one shared checkpoint, and `idm-jax evaluate` on two processes reports what one process
does. The one-process reference runs here, on one device: the program the other training tests
compile, so the persistent compilation cache serves it.
"""
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from PIL import Image

from idm_jax import paths
from idm_jax.data import image_io
from idm_jax.evaluation import evaluator
from idm_jax.training import train
from tests import float_rounding
from tests import object_store
from tests import tensorboard_events
from tests.training import common


REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIG = 'tests/training/micro_config.py'
STEPS = 4
TIMEOUT = 420  # Seconds for one group of processes, start-up and compilation included.


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _train(workdir: pathlib.Path, processes: int, devices: int, env: dict[str, str]) -> list[str]:
  """`python -m idm_jax.main` on `processes` processes of `devices` CPU devices; their logs."""
  command = [sys.executable, '-m', 'idm_jax.main', f'--config={CONFIG}', f'--workdir={workdir}',
             f'--config.train.num_steps={STEPS}', f'--config.mesh.data={processes * devices}']
  return _run_job(command, processes, devices, env)


def _run_job(command: list[str], processes: int, devices: int,
             env: dict[str, str]) -> list[str]:
  """`command` as `processes` processes of `devices` CPU devices, joined by the coordinator
  flags; their logs.

  Every process is killed (with its process group) if the job overruns or a test fails.
  """
  env = {**env, 'JAX_PLATFORMS': 'cpu', 'JAX_CPU_COLLECTIVES_IMPLEMENTATION': 'gloo',
         'XLA_FLAGS': f'--xla_force_host_platform_device_count={devices}'}
  if processes > 1:
    command = [*command, f'--coordinator_address=127.0.0.1:{_free_port()}',
               f'--num_processes={processes}']
  procs = []
  try:
    for i in range(processes):
      flags = [f'--process_id={i}'] if processes > 1 else []
      procs.append(subprocess.Popen(command + flags, cwd=REPO, env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True))
    deadline = time.monotonic() + TIMEOUT
    logs = [p.communicate(timeout=max(deadline - time.monotonic(), 1))[0] for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
  for i, (p, log) in enumerate(zip(procs, logs)):
    assert p.returncode == 0, f'process {i} of {processes} failed:\n{log[-4000:]}'
  return logs


def _params(checkpoint_dir: pathlib.Path | str, step: int) -> dict:
  """The saved parameters and EMA of a step, as numpy arrays (whatever mesh wrote them)."""
  out = {}
  with ocp.StandardCheckpointer() as checkpointer:
    for name in ('params', 'ema_params'):
      path = paths.resolve(checkpoint_dir) / str(step) / name
      tree = checkpointer.metadata(path).item_metadata.tree
      out[name] = checkpointer.restore(
          path, jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), tree))
  return out


def _assert_trees_close(a, b, **tolerance):
  paths_a, leaves_a = zip(*jax.tree_util.tree_flatten_with_path(a)[0])
  paths_b, leaves_b = zip(*jax.tree_util.tree_flatten_with_path(b)[0])
  assert paths_a == paths_b
  for path, x, y in zip(paths_a, leaves_a, leaves_b):
    np.testing.assert_allclose(x, y, err_msg=jax.tree_util.keystr(path), **tolerance)


@pytest.fixture(scope='module')
def one_process(tmp_path_factory):
  """The reference: the micro config trained here, on one process and one device."""
  one = tmp_path_factory.mktemp('one')
  config = common.micro_config()
  config.train.num_steps = STEPS
  train.train_and_evaluate(config, one)
  return config, one


def test_two_processes_train_and_evaluate_as_one(tmp_path, subprocess_env, one_process):
  config, one = one_process
  two = tmp_path / 'two_x2'
  logs = _train(two, 2, 2, subprocess_env)
  assert 'JAX process 1 / 2' in logs[1], logs[1][-2000:]

  # One shared checkpoint, written by both processes; the same training as on one process.
  assert sorted(p.name for p in (two / 'checkpoints').iterdir() if p.name.isdigit()) == [
      str(STEPS)]
  loss_one = tensorboard_events.scalars(one)['loss']
  loss_two = tensorboard_events.scalars(two)['loss']
  assert [s for s, _ in loss_one] == [s for s, _ in loss_two] == [2, 4]
  np.testing.assert_allclose([v for _, v in loss_two], [v for _, v in loss_one], rtol=1e-5)
  _assert_trees_close(_params(two / 'checkpoints', STEPS), _params(one / 'checkpoints', STEPS),
                      rtol=1e-4, atol=1e-6)

  # `idm-jax evaluate` of that checkpoint on two processes, and here on one device.
  _run_job([sys.executable, '-m', 'idm_jax.cli.main', 'evaluate', '--config', CONFIG,
            '--checkpoint', str(two / 'checkpoints'), '--output', str(two / 'eval'),
            '--config.mesh.data=4'], 2, 2, subprocess_env)
  got = json.loads((two / 'eval' / 'metrics.json').read_text())
  reference = evaluator.evaluate_checkpoint(config, two / 'checkpoints')
  expected = reference.report
  assert (got['num_devices'], expected['num_devices']) == (4, 1)
  pairs = [(g, e) for gs, es in zip(got['scales'], expected['scales'])
           for g, e in zip(gs['images'], es['images'])]
  assert pairs and all(g['image'] == e['image'] for g, e in pairs)
  # Other programs (4 devices on 2 processes, 1 device): the same images to 8-bit rounding.
  for pair, samples in zip(reference.pairs, reference.samples):
    for k, sample in enumerate(samples):
      written = Image.open(two / 'eval' / evaluator.sample_file(pair, k))
      float_rounding.assert_8bit_equal_to_rounding(written, image_io.to_uint8(sample))
  for column, atol in (('psnr_mean', 0.01), ('ssim_mean', 1e-3), ('lr_consistency_mean', 0.01)):
    np.testing.assert_allclose([g[column] for g, _ in pairs], [e[column] for _, e in pairs],
                               atol=atol, err_msg=column)


def test_two_processes_write_one_checkpoint_to_a_bucket(tmp_path, subprocess_env, one_process,
                                                        monkeypatch):
  """A TPU pod's set-up: every process writes its shards (fsdp) of one checkpoint into gs://,
  the first commits it; it holds what one process trains."""
  _, one = one_process
  with object_store.emulator(tmp_path) as (env, fs):
    run = f'gs://{object_store.BUCKET}/runs/two_x2'
    _run_job([sys.executable, '-m', 'idm_jax.main', f'--config={CONFIG}', f'--workdir={run}',
              f'--config.train.num_steps={STEPS}', '--config.mesh.data=4',
              '--config.mesh.param_sharding=fsdp'], 2, 2, {**subprocess_env, **env})
    assert fs.exists(f'{object_store.BUCKET}/runs/two_x2/checkpoints/{STEPS}/commit_success.txt')
    for key, value in env.items():
      monkeypatch.setenv(key, value)
    _assert_trees_close(_params(f'{run}/checkpoints', STEPS), _params(one / 'checkpoints', STEPS),
                        rtol=1e-4, atol=1e-6)
