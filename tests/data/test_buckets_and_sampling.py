"""HR size buckets, the scale input p, shards and the per-host record stream."""
import numpy as np
import pytest

from idm_jax.config import data as config_lib
from idm_jax.data import buckets
from idm_jax.data import batch_rows


def _cfg(lr, lo, hi, multiple):
  cfg = config_lib.default_data_config()
  cfg.update(lr_size=lr, min_hr_size=lo, max_hr_size=hi, bucket_multiple=multiple)
  return cfg


@pytest.mark.parametrize('lr, lo, hi, multiple, expected', [
    (16, 16, 128, 8, list(range(16, 129, 8))),  # Official faces: 15 compilations.
    (40, 40, 160, 8, list(range(40, 161, 8))),  # DIV2K x4 patches: 16.
    (16, 20, 64, 16, [20, 32, 48, 64]),  # Ends that are not multiples are kept.
    (16, 16, 24, 1, list(range(16, 25))),
])
def test_hr_sizes(lr, lo, hi, multiple, expected):
  assert buckets.hr_sizes(_cfg(lr, lo, hi, multiple)) == expected


def test_scale_input_is_the_official_affine_map():
  # Official: w_hr = w_lr + (w_max - w_lr) * p.
  for hr in (16, 40, 88, 128):
    p = buckets.scale_input(hr, 16, 128)
    assert 16 + (128 - 16) * p == pytest.approx(hr)


def test_draw_covers_every_bucket_with_end_buckets_half_as_likely():
  sizes = list(range(16, 129, 8))
  rng = np.random.default_rng(0)
  draws = np.array([buckets.draw_hr_size(rng, sizes, 16, 128) for _ in range(14000)])
  counts = np.array([(draws == s).sum() for s in sizes])
  # p ~ U[0, 1] snapped to the nearest of 15 equally spaced sides: 1/14 inside, 1/28 at the ends.
  np.testing.assert_allclose(counts[1:-1] / len(draws), 1 / 14, atol=0.01)
  np.testing.assert_allclose(counts[[0, -1]] / len(draws), 1 / 28, atol=0.01)


def test_draw_respects_min_hr_size():
  sizes = [64, 72, 80]
  rng = np.random.default_rng(1)
  assert {buckets.draw_hr_size(rng, sizes, 16, 80) for _ in range(200)} == set(sizes)


def test_stream_visits_each_record_once_per_epoch():
  sampler = batch_rows.GlobalSampler(10, seed=5, global_batch=4)
  stream = [sampler.record(step, slot) for step in range(10) for slot in range(4)]
  for epoch in range(4):
    assert sorted(stream[10 * epoch:10 * epoch + 10]) == list(range(10))
  assert stream[:10] != stream[10:20]  # Each epoch is shuffled afresh.


def test_stream_is_a_pure_function_of_seed_step_and_slot():
  a = batch_rows.GlobalSampler(50, seed=1, global_batch=4)
  b = batch_rows.GlobalSampler(50, seed=1, global_batch=4)
  late = [b.record(40, s) for s in range(4)]  # b starts late: no state carried over.
  assert [a.record(40, s) for s in range(4)] == late
  rng_a, rng_b = a.slot_rng(40, 3), b.slot_rng(40, 3)
  assert rng_a.integers(1 << 30, size=4).tolist() == rng_b.integers(1 << 30, size=4).tolist()
  other_seed = batch_rows.GlobalSampler(50, seed=2, global_batch=4)
  assert [other_seed.record(s, 0) for s in range(20)] != [a.record(s, 0) for s in range(20)]
  assert all(0 <= a.record(3, 1, attempt) < 50 for attempt in range(1, 20))
  assert len({a.record(3, 1, attempt) for attempt in range(1, 20)}) > 1


def test_empty_dataset_is_an_error():
  with pytest.raises(ValueError, match='no records'):
    batch_rows.GlobalSampler(0, seed=0, global_batch=4)
