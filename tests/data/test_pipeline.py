"""TrainPipeline: shapes, continuous scales, determinism and resume, hosts, official LR."""
import io

import numpy as np
import pytest
from PIL import Image

from idm_jax.config import data as config_lib
from idm_jax.data import buckets
from idm_jax.data import imresize
from idm_jax.data import pipeline
from tests import object_store


def _random_images(n, side, seed=0):
  rng = np.random.default_rng(seed)
  return [rng.integers(0, 256, (side, side + 5, 3), dtype=np.uint8) for _ in range(n)]


def _coded_images(n, side):
  """Constant images whose value 3 * i identifies image i."""
  return [np.full((side, side, 3), 3 * i, np.uint8) for i in range(n)]


def _decode(hr):
  """Indices of the coded images in a [-1, 1] batch (b, h, w, 3)."""
  return np.round((hr.mean(axis=(1, 2, 3)) + 1) * 127.5 / 3).astype(int).tolist()


def _to_uint8(x):
  return np.round((x + 1) * 127.5).astype(np.uint8)


def _assert_batches_equal(a, b):
  assert a.keys() == b.keys() == {'lr', 'hr', 'p'}
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])


def test_batches_have_the_promised_shapes_and_values(write_folder, folder_config):
  cfg = folder_config(write_folder('imgs', _random_images(6, 40)))
  pipe = pipeline.TrainPipeline(cfg, global_batch_size=4, seed=0)
  assert pipe.hr_sizes == [8, 16, 24, 32]
  seen = set()
  for step in range(24):
    batch = pipe.batch(step)
    side = batch['hr'].shape[1]
    seen.add(side)
    assert batch['lr'].shape == (4, 8, 8, 3) and batch['hr'].shape == (4, side, side, 3)
    assert all(v.dtype == np.float32 for v in batch.values())
    assert -1 <= batch['hr'].min() and batch['hr'].max() <= 1
    assert -1 <= batch['lr'].min() and batch['lr'].max() <= 1
    np.testing.assert_allclose(batch['p'], (side - 8) / (32 - 8))
  assert seen == {8, 16, 24, 32}


def test_resume_at_step_k_reproduces_the_uninterrupted_run(write_folder, folder_config):
  cfg = folder_config(write_folder('imgs', _random_images(5, 36)), vflip=True, rot90=True)
  full = pipeline.TrainPipeline(cfg, 3, seed=7)
  uninterrupted = dict(step_batch for _, step_batch in zip(range(9), full.iterate(0)))
  resumed = pipeline.TrainPipeline(cfg, 3, seed=7)
  for (step, batch), expected_step in zip(resumed.iterate(5), range(5, 9)):
    assert step == expected_step
    _assert_batches_equal(batch, uninterrupted[step])
    _assert_batches_equal(batch, full.batch(step))
  other_seed = pipeline.TrainPipeline(cfg, 3, seed=8)
  assert not all(np.array_equal(other_seed.batch(s)['lr'], uninterrupted[s]['lr'])
                 for s in range(9))


def test_worker_processes_give_the_same_batches(write_folder, folder_config):
  cfg = folder_config(write_folder('imgs', _random_images(5, 36)), num_workers=2, num_threads=1)
  pipe = pipeline.TrainPipeline(cfg, 2, seed=3)
  it = pipe.iterate(4)
  got = [next(it) for _ in range(4)]
  it.close()
  assert [step for step, _ in got] == [4, 5, 6, 7]
  for step, batch in got:
    _assert_batches_equal(batch, pipe.batch(step))


def test_worker_processes_read_images_from_a_bucket(tmp_path, monkeypatch, write_folder,
                                                    folder_config):
  # Grain starts its workers with 'spawn': each unpickles the source and opens the bucket itself.
  images = _random_images(5, 36)
  with object_store.emulator(tmp_path) as (env, fs):
    for k, v in env.items():
      monkeypatch.setenv(k, v)
    for i, image in enumerate(images):
      buffer = io.BytesIO()
      Image.fromarray(image).save(buffer, format='PNG')
      fs.pipe(f'{object_store.BUCKET}/imgs/{i:04d}.png', buffer.getvalue())
    in_bucket = folder_config(f'gs://{object_store.BUCKET}/imgs', num_workers=2, num_threads=1)
    it = pipeline.TrainPipeline(in_bucket, 2, seed=3).iterate(4)
    got = [next(it) for _ in range(3)]
    it.close()
  local = pipeline.TrainPipeline(folder_config(write_folder('imgs', images)), 2, seed=3)
  assert [step for step, _ in got] == [4, 5, 6]
  for step, batch in got:
    _assert_batches_equal(batch, local.batch(step))


@pytest.mark.parametrize('hosts', [2, 3])
def test_hosts_build_their_rows_of_the_one_host_batch(write_folder, folder_config, hosts):
  # Row j of step k is the same whoever builds it: 1 host x 6 rows == 2 x 3 == 3 x 2.
  cfg = folder_config(write_folder('imgs', _random_images(5, 36)), vflip=True, rot90=True)
  whole = pipeline.TrainPipeline(cfg, 6, seed=1)
  b = 6 // hosts
  parts = [pipeline.TrainPipeline(cfg, 6, seed=1, rows=range(h * b, (h + 1) * b))
           for h in range(hosts)]
  for step in range(5):
    batches = [p.batch(step) for p in parts]
    joined = {k: np.concatenate([x[k] for x in batches]) for k in batches[0]}
    _assert_batches_equal(joined, whole.batch(step))


def test_every_record_once_per_epoch_across_hosts(write_folder, folder_config):
  cfg = folder_config(write_folder('imgs', _coded_images(12, 32)))
  hosts = [pipeline.TrainPipeline(cfg, 6, seed=1, rows=range(3 * h, 3 * h + 3)) for h in range(2)]
  for epoch in range(2):
    seen = [i for step in (2 * epoch, 2 * epoch + 1) for h in hosts
            for i in _decode(h.batch(step)['hr'])]
    assert sorted(seen) == list(range(12))


def test_lr_is_the_degraded_hr_crop_after_augmentation(write_folder, folder_config):
  cfg = folder_config(write_folder('imgs', _random_images(4, 40)), hflip=True, vflip=True,
                      rot90=True, min_hr_size=32)
  pipe = pipeline.TrainPipeline(cfg, 4, seed=0)
  batch = pipe.batch(0)
  assert batch['hr'].shape[1] == 32
  hr, lr = _to_uint8(batch['hr']), _to_uint8(batch['lr'])
  for i in range(4):
    # Up to the uint8 rounding of the LR: a misaligned flip or rotation would be off by ~80.
    diff = np.abs(imresize.imresize(hr[i].astype(np.float64), output_hw=(8, 8)) - lr[i])
    assert diff.max() <= 1.5 and diff.mean() < 0.5


def test_hr_target_is_the_crop_resized_to_the_bucket(write_folder, folder_config):
  cfg = folder_config(write_folder('imgs', _random_images(4, 40)), hflip=False)
  pipe = pipeline.TrainPipeline(cfg, 2, seed=0)
  full_cfg = folder_config(cfg.path, hflip=False, min_hr_size=32)
  for step in range(12):
    batch = pipe.batch(step)
    side = batch['hr'].shape[1]
    if side == 32:
      continue
    # The same crop at full size: same seed and step give the same records and crops.
    full = pipeline.TrainPipeline(full_cfg, 2, seed=0).batch(step)
    expected = imresize.imresize((full['hr'] + 1) * 127.5, output_hw=(side, side)) / 127.5 - 1
    np.testing.assert_allclose(batch['hr'], np.clip(expected, -1, 1), atol=1e-5)
    np.testing.assert_array_equal(batch['lr'], full['lr'])
    return
  pytest.fail('no step drew a target below the maximum')


def test_official_lr_images_are_used_as_they_are(write_folder, folder_config):
  rng = np.random.default_rng(0)
  lrs = [rng.integers(0, 256, (10, 12, 3), dtype=np.uint8) for _ in range(3)]
  hrs = [np.kron(lr, np.ones((4, 4, 1), np.uint8)) for lr in lrs]  # Blocky: not a bicubic LR.
  hr_dir = write_folder('hr', hrs)
  lr_dir = write_folder('lr', lrs, suffix='x4')  # DIV2K names: 0000.png <-> 0000x4.png.
  cfg = folder_config(hr_dir, lr_path=lr_dir, lr_scale=4, min_hr_size=32, hflip=True,
                      rot90=True)
  batch = pipeline.TrainPipeline(cfg, 3, seed=0).batch(0)
  hr, lr = _to_uint8(batch['hr']), _to_uint8(batch['lr'])
  for i in range(3):
    np.testing.assert_array_equal(hr[i], np.kron(lr[i], np.ones((4, 4, 1), np.uint8)))
  with pytest.raises(ValueError, match='max_hr_size'):
    pipeline.TrainPipeline(folder_config(hr_dir, lr_path=lr_dir, lr_scale=4, max_hr_size=40), 3, 0)


def test_embedded_default_runs_offline():
  cfg = config_lib.default_data_config()
  cfg.update(num_workers=0, num_threads=0)
  pipe = pipeline.TrainPipeline(cfg, 2, seed=0)
  assert pipe.num_records == 7
  assert pipe.hr_sizes == buckets.hr_sizes(cfg) and len(pipe.hr_sizes) == 15
  batch = pipe.batch(0)
  assert batch['lr'].shape == (2, 16, 16, 3)


@pytest.mark.parametrize('fields, match', [
    ({'source': 'lmdb'}, 'data.source'),
    ({'degradation': 'bilinear'}, 'data.degradation'),
    ({'min_hr_size': 8}, 'lr_size'),
    ({'max_bad_fraction': 2.0}, 'max_bad_fraction'),
])
def test_bad_config_names_the_field(fields, match):
  cfg = config_lib.default_data_config()
  cfg.update(fields)
  with pytest.raises(ValueError, match=match):
    pipeline.TrainPipeline(cfg, 2, seed=0)


@pytest.mark.parametrize('rows', [range(0), range(3, 7), range(0, 4, 2), range(-1, 2)])
def test_rows_must_be_a_block_of_the_global_batch(rows):
  with pytest.raises(ValueError, match='contiguous'):
    pipeline.TrainPipeline(config_lib.default_data_config(), 6, seed=0, rows=rows)
