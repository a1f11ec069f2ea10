"""Corrupt and small images are skipped and counted; too many stop the run; start-up errors."""
import logging
import os

import numpy as np
import pytest

from idm_jax.data import bad_data
from idm_jax.data import pipeline


def _images(n, side=32):
  rng = np.random.default_rng(0)
  return [rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for _ in range(n)]


def _corrupt(folder, index):
  path = os.path.join(folder, f'{index:04d}.png')
  with open(path, 'wb') as f:
    f.write(b'this is not an image')
  return path


def _run(pipe, steps):
  for step in range(steps):
    batch = pipe.batch(step)
    assert batch['lr'].shape[0] == pipe.local_batch_size  # Skips never shrink a batch.


def test_corrupt_file_is_skipped_counted_and_logged(write_folder, folder_config, caplog):
  folder = write_folder('imgs', _images(20))
  bad = _corrupt(folder, 7)
  pipe = pipeline.TrainPipeline(folder_config(folder, max_bad_fraction=0.1), 4, seed=0)
  with caplog.at_level(logging.WARNING):
    _run(pipe, 10)  # Two epochs: every record is drawn.
  assert pipe.skipped_counts == {'unreadable': 1}
  assert bad in caplog.text


def test_too_many_bad_files_stop_the_run(write_folder, folder_config):
  folder = write_folder('imgs', _images(10))
  for i in range(4):
    _corrupt(folder, i)
  pipe = pipeline.TrainPipeline(folder_config(folder, max_bad_fraction=0.2), 4, seed=0)
  with pytest.raises(bad_data.BadDataError, match='max_bad_fraction=0.2'):
    _run(pipe, 10)


def test_iterate_stops_too(write_folder, folder_config):
  folder = write_folder('imgs', _images(6))
  for i in range(6):
    _corrupt(folder, i)
  pipe = pipeline.TrainPipeline(folder_config(folder, max_bad_fraction=0.5), 2, seed=0)
  with pytest.raises(bad_data.BadDataError):
    next(pipe.iterate(0))


def test_small_image_is_skipped_or_padded(write_folder, folder_config):
  images = _images(6, side=40)
  images[2] = np.full((20, 24, 3), 255, np.uint8)  # Smaller than the 32 crop; white.
  folder = write_folder('imgs', images)

  skipping = pipeline.TrainPipeline(folder_config(folder, max_bad_fraction=0.5), 3, seed=0)
  _run(skipping, 6)
  assert skipping.skipped_counts == {'too_small': 1}

  padding = pipeline.TrainPipeline(folder_config(folder, pad_small=True, min_hr_size=32), 3, 0)
  white = 0
  for step in range(6):
    batch = padding.batch(step)
    white += int(np.sum(batch['hr'].min(axis=(1, 2, 3)) == 1.0))  # The padded white image.
  assert padding.skipped_counts == {}
  assert white == 3  # Drawn once per epoch, 3 epochs of 6 records in 18 slots.


def test_eval_skips_and_counts_bad_images(write_folder, folder_config, caplog):
  folder = write_folder('val', _images(4))
  bad = _corrupt(folder, 1)
  cfg = folder_config('', max_bad_fraction=0.5)
  cfg.eval.path = folder
  with caplog.at_level(logging.WARNING):
    out = pipeline.eval_pairs(cfg, [2], num_images=100)
  assert [d['name'] for d in out] == ['0000_x2', '0002_x2', '0003_x2']
  assert bad in caplog.text
  cfg.max_bad_fraction = 0.1
  with pytest.raises(bad_data.BadDataError):
    pipeline.eval_pairs(cfg, [2], num_images=100)


def test_empty_or_missing_folder_says_what_to_do(tmp_path, folder_config):
  (tmp_path / 'empty').mkdir()
  (tmp_path / 'text').mkdir()
  (tmp_path / 'text' / 'notes.txt').write_text('no images here')
  for folder in ('empty', 'text'):
    with pytest.raises(ValueError, match='No images .* point data.path'):
      pipeline.TrainPipeline(folder_config(os.fspath(tmp_path / folder)), 2, seed=0)
  with pytest.raises(FileNotFoundError, match='does not exist'):
    pipeline.TrainPipeline(folder_config(os.fspath(tmp_path / 'nope')), 2, seed=0)
  with pytest.raises(ValueError, match='set data.path'):
    pipeline.TrainPipeline(folder_config(''), 2, seed=0)


def test_missing_lr_partner_is_a_startup_error(write_folder, folder_config):
  hr_dir = write_folder('hr', _images(3))
  lr_dir = write_folder('lr', _images(2, side=8), suffix='x4')
  with pytest.raises(ValueError, match=r"1 HR images have no LR image.*\['0002'\]"):
    pipeline.TrainPipeline(folder_config(hr_dir, lr_path=lr_dir, lr_scale=4), 2, seed=0)


def test_unknown_tfds_name(folder_config):
  cfg = folder_config('', source='tfds')
  cfg.tfds.name = 'div2kk'
  with pytest.raises(ValueError, match=r"Unknown TFDS dataset 'div2kk' \(closest: \['div2k'"):
    pipeline.TrainPipeline(cfg, 2, seed=0)


def test_missing_manual_dir(tmp_path, folder_config):
  cfg = folder_config('', source='tfds')
  cfg.tfds.update(name='celeb_a_hq', config='128', data_dir=os.fspath(tmp_path))
  with pytest.raises(ValueError, match='manual download.*data.tfds.manual_dir'):
    pipeline.TrainPipeline(cfg, 2, seed=0)
  cfg.tfds.manual_dir = os.fspath(tmp_path / 'not_there')
  with pytest.raises(ValueError, match='manual download'):
    pipeline.TrainPipeline(cfg, 2, seed=0)


def test_unprepared_tfds_without_download(tmp_path, folder_config):
  cfg = folder_config('', source='tfds')
  cfg.tfds.update(name='div2k', config='bicubic_x4', data_dir=os.fspath(tmp_path), download=False)
  with pytest.raises(ValueError, match='not prepared.*data.tfds.download=True'):
    pipeline.TrainPipeline(cfg, 2, seed=0)
