"""Paths: the storages each use admits, with errors naming the fix, and s3:// end to end against
a local S3 stand-in (moto's server): training images read from it, `idm-jax upscale` writing to
it, and a checkpoint folder there refused before anything is written."""
import io
import pathlib

import numpy as np
import pytest
from PIL import Image

from idm_jax import paths
from idm_jax.cli import main as cli
from idm_jax.config import data as data_config_lib
from idm_jax.data import pipeline
from idm_jax.data import sources
from tests import object_store
from tests.cli import tiny_run

BUCKET = object_store.BUCKET
DEMO_CONFIG = pathlib.Path(__file__).resolve().parents[1] / 'configs' / 'demo.py'


def test_unknown_scheme_names_the_supported_ones():
  with pytest.raises(ValueError, match=r'http:// is not a storage.*gs://, s3://, az://'):
    paths.resolve('http://example.com/a.png')


def test_a_missing_backend_names_its_install(monkeypatch):
  find_spec = paths.importlib.util.find_spec
  monkeypatch.setattr(paths.importlib.util, 'find_spec',
                      lambda name: None if name == 's3fs' else find_spec(name))
  with pytest.raises(ValueError, match=r's3:// paths need s3fs.*pip install "idm_jax\[s3\]"'):
    paths.resolve('s3://bucket/images')
  assert str(paths.resolve('gs://bucket/images')) == 'gs://bucket/images'


@pytest.mark.parametrize('uri', ['s3://bucket/run/checkpoints', 'az://container/checkpoints'])
def test_checkpoints_only_local_or_on_gcs(uri, monkeypatch, tmp_path):
  monkeypatch.setattr(paths.importlib.util, 'find_spec', lambda name: object())  # adlfs too.
  with pytest.raises(ValueError, match=r'checkpoints cannot live on (s3|az)://.*gs://'):
    paths.checkpoint_dir(uri)
  assert str(paths.checkpoint_dir('gs://bucket/run/checkpoints')) == 'gs://bucket/run/checkpoints'
  assert paths.checkpoint_dir(tmp_path / 'c') == paths.resolve(tmp_path / 'c')


@pytest.fixture(scope='module')
def s3(tmp_path_factory):
  """The S3 stand-in, one per module; its environment and a boto3 client."""
  with object_store.s3_emulator(tmp_path_factory.mktemp('s3')) as served:
    yield served


@pytest.fixture
def s3_env(s3, monkeypatch):
  env, client = s3
  for key, value in env.items():
    monkeypatch.setenv(key, value)
  return client


def _png(image: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format='PNG')
  return buffer.getvalue()


def test_training_images_from_s3_are_those_of_a_local_folder(s3_env, tmp_path):
  rng = np.random.default_rng(0)
  # Subfolders too: their files come after the folder's own, in the same order as on disk.
  names = ['b.png', 'a.png', 'sub/c.png', 'sub/deeper/d.png', 'sub2/e.png']
  local = tmp_path / 'imgs'
  for name in names:
    image = rng.integers(0, 256, (36, 41, 3), dtype=np.uint8)
    s3_env.put_object(Bucket=BUCKET, Key=f'imgs/{name}', Body=_png(image))
    (local / name).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(local / name)
  s3_env.put_object(Bucket=BUCKET, Key='imgs2/f.png', Body=_png(image))  # Not under imgs/.

  def config(path):
    c = data_config_lib.default_data_config()
    c.update(source='folder', path=path, num_workers=0, num_threads=0, lr_size=8, min_hr_size=8,
             max_hr_size=32, bucket_multiple=8)
    return c

  remote = pipeline.TrainPipeline(config(f's3://{BUCKET}/imgs'), 2, seed=3)
  expected = pipeline.TrainPipeline(config(str(local)), 2, seed=3)
  assert remote.num_records == 5
  listed = [p.split('/imgs/', 1)[1] for p in sources.list_images(f's3://{BUCKET}/imgs')]
  assert listed == ['a.png', 'b.png', 'sub/c.png', 'sub/deeper/d.png', 'sub2/e.png']
  assert listed == [p.split('/imgs/', 1)[1] for p in sources.list_images(str(local))]
  for step in range(3):
    got, want = remote.batch(step), expected.batch(step)
    for key in want:
      np.testing.assert_array_equal(got[key], want[key])


def test_upscale_reads_and_writes_s3(s3_env, tmp_path):
  config_path = tiny_run.write_config(tmp_path)
  checkpoint = tiny_run.write_checkpoint(tmp_path, config_path)
  image = np.random.default_rng(1).integers(0, 256, (8, 10, 3), dtype=np.uint8)
  s3_env.put_object(Bucket=BUCKET, Key='in/photo.png', Body=_png(image))
  status = cli.run(['upscale', f's3://{BUCKET}/in/photo.png', '--checkpoint', str(checkpoint),
                    '--config', str(config_path), '--scale', '2', '--steps', '2', '--output',
                    f's3://{BUCKET}/out'])
  assert status == 0
  body = s3_env.get_object(Bucket=BUCKET, Key='out/photo_x2.png')['Body'].read()
  assert Image.open(io.BytesIO(body)).size == (20, 16)


def test_an_s3_workdir_is_refused_before_any_write(s3_env, capsys):
  status = cli.run(['train', f'--config={DEMO_CONFIG}', f'--workdir=s3://{BUCKET}/runs/demo'])
  assert status == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and 'checkpoints cannot live on s3://' in err
  assert 'Contents' not in s3_env.list_objects_v2(Bucket=BUCKET, Prefix='runs/')
