"""TFDS sources end to end: mocked catalogue datasets and a dataset prepared from local data."""
import os
import subprocess
import textwrap

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from idm_jax.data import pipeline
from tests import isolated_site


def _tfds_config(folder_config, name, config='', **tfds_fields):
  cfg = folder_config('', source='tfds')
  cfg.tfds.update(name=name, config=config, **tfds_fields)
  return cfg


def _to_uint8(x):
  return np.round((x + 1) * 127.5).astype(np.uint8)


def test_mock_celeb_a_hq_with_manual_dir(tmp_path, folder_config):
  cfg = _tfds_config(folder_config, 'celeb_a_hq', '128', manual_dir=os.fspath(tmp_path))
  cfg.update(lr_size=16, min_hr_size=16, max_hr_size=128, degradation='pil_bicubic')
  with tfds.testing.mock_data(num_examples=6):
    pipe = pipeline.TrainPipeline(cfg, 4, seed=0)
    assert pipe.num_records == 6
    for step in range(3):
      batch = pipe.batch(step)
      assert batch['lr'].shape == (4, 16, 16, 3)
      assert batch['hr'].shape[1] in pipe.hr_sizes
    pairs = pipeline.eval_pairs(cfg, [8], num_images=100)
  assert len(pairs) == 6 and pairs[0]['lr'].shape == (16, 16, 3)
  assert pairs[0]['hr'].shape == (128, 128, 3) and pairs[0]['name'] == '000000_x8'


def test_mock_div2k_uses_its_official_lr_images(folder_config):
  rng = np.random.default_rng(0)

  def as_data_source(self, split, **kwargs):
    del self, split, kwargs
    lrs = [rng.integers(0, 256, (9 + i, 11, 3), dtype=np.uint8) for i in range(4)]
    # Blocky HR: its bicubic LR would differ from these LR images.
    return [{'hr': np.kron(lr, np.ones((4, 4, 1), np.uint8)), 'lr': lr} for lr in lrs]

  cfg = _tfds_config(folder_config, 'div2k', 'bicubic_x4')  # Scale 4 read from the config name.
  cfg.update(lr_size=8, min_hr_size=32, max_hr_size=32, hflip=True, vflip=True)
  with tfds.testing.mock_data(as_data_source_fn=as_data_source):
    batch = pipeline.TrainPipeline(cfg, 4, seed=0).batch(0)
    hr, lr = _to_uint8(batch['hr']), _to_uint8(batch['lr'])
    for i in range(4):
      np.testing.assert_array_equal(hr[i], np.kron(lr[i], np.ones((4, 4, 1), np.uint8)))
    pairs = pipeline.eval_pairs(cfg, [4, 2], num_images=100)
  official, degraded = pairs[0], pairs[1]
  np.testing.assert_array_equal(_to_uint8(official['hr']),
                                np.kron(_to_uint8(official['lr']), np.ones((4, 4, 1))))
  assert degraded['scale'] == 2 and degraded['hr'].shape == (36, 44, 3)
  assert degraded['lr'].shape == (18, 22, 3)


def test_mock_grayscale_dataset_with_auto_image_key(folder_config):
  cfg = _tfds_config(folder_config, 'mnist')
  cfg.update(lr_size=4, min_hr_size=4, max_hr_size=16)
  with tfds.testing.mock_data(num_examples=5):
    batch = pipeline.TrainPipeline(cfg, 2, seed=0).batch(0)
  lr = batch['lr']
  assert lr.shape == (2, 4, 4, 3)
  np.testing.assert_array_equal(lr[..., 0], lr[..., 2])  # Gray became RGB.


def test_image_key_must_exist(folder_config):
  cfg = _tfds_config(folder_config, 'mnist', image_key='picture')
  with tfds.testing.mock_data(num_examples=2):
    with pytest.raises(ValueError, match="no feature 'picture'"):
      pipeline.TrainPipeline(cfg, 2, seed=0)


class LocalCodedImages(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A dataset prepared from local arrays: constant images whose value 3 * i names image i."""
  VERSION = tfds.core.Version('1.0.0')
  # TFDS 4.9.10 looks up the code path of builders in dotted test modules through the
  # `importlib_resources` backport, which Python 3.11 does not install; a flat module name skips it.
  __module__ = 'local_coded_images'

  def _info(self):
    features = tfds.features.FeaturesDict({
        'picture': tfds.features.Image(shape=(None, None, 3)),
        'label': tfds.features.ClassLabel(num_classes=2),
    })
    return tfds.core.DatasetInfo(builder=self, features=features)

  def _split_generators(self, dl_manager):
    del dl_manager
    return {'train': self._generate_examples(range(6)),
            'validation': self._generate_examples(range(6, 8))}

  def _generate_examples(self, indices):
    for i in indices:
      yield i, {'picture': np.full((40, 40 + i, 3), 3 * i, np.uint8), 'label': i % 2}


def test_dataset_prepared_from_local_files(tmp_path, folder_config):
  data_dir = os.fspath(tmp_path / 'tfds')
  LocalCodedImages(data_dir=data_dir, file_format='array_record').download_and_prepare()
  cfg = _tfds_config(folder_config, 'local_coded_images', data_dir=data_dir, download=False)
  hosts = [pipeline.TrainPipeline(cfg, 6, seed=0, rows=range(3 * h, 3 * h + 3)) for h in range(2)]
  seen = []
  for pipe in hosts:
    hr = pipe.batch(0)['hr']
    seen += np.round((hr.mean(axis=(1, 2, 3)) + 1) * 127.5 / 3).astype(int).tolist()
  assert sorted(seen) == list(range(6))  # One epoch: every record once, over both hosts.
  names = [d['name'] for d in pipeline.eval_pairs(cfg, [2], num_images=100)]
  assert names == ['000000_x2', '000001_x2']


def test_without_the_extra_tfds_is_refused_with_the_install_command(tmp_path):
  """Where TensorFlow is not installed, the folder source works and the TFDS source names the
  extra that brings it."""
  python, env = isolated_site.python_without(('tensorflow',), tmp_path / 'site', dict(os.environ))
  script = textwrap.dedent(f'''
      import sys
      from idm_jax.config import data as data_config
      from idm_jax.data import sources
      cfg = data_config.default_data_config()
      cfg.source = 'folder'
      cfg.path = {os.fspath(tmp_path / 'photos')!r}
      assert len(sources.make_source(cfg, 'train')) == 1
      assert 'tensorflow' not in sys.modules
      cfg.source = 'tfds'
      cfg.tfds.name = 'div2k'
      sources.make_source(cfg, 'train')
      ''')
  (tmp_path / 'photos').mkdir()
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / 'photos' / 'a.png')
  result = subprocess.run(python + ['-c', script], env=env, capture_output=True, text=True,
                          timeout=120)
  assert result.returncode == 1
  assert "needs TensorFlow Datasets" in result.stderr
  assert "pip install 'idm_jax[tfds]'" in result.stderr, result.stderr[-2000:]
