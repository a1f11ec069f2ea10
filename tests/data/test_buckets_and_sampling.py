"""HR size buckets, the scale input p, shards and the per-host record stream."""
import numpy as np
import pytest

from idm_jax.data import buckets
from idm_jax.data import config as config_lib
from idm_jax.data import sampling


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


@pytest.mark.parametrize('n, hosts', [(10, 1), (10, 3), (7, 7), (1000, 8)])
def test_shards_are_disjoint_and_cover(n, hosts):
  shards = [sampling.shard_indices(n, h, hosts) for h in range(hosts)]
  everything = np.concatenate(shards)
  assert len(everything) == n and set(everything.tolist()) == set(range(n))


def test_too_many_hosts_is_an_error():
  with pytest.raises(ValueError, match='too few'):
    sampling.shard_indices(3, 3, 4)


def test_stream_visits_each_record_once_per_epoch():
  shard = sampling.shard_indices(30, 1, 3)  # 10 records.
  sampler = sampling.HostSampler(shard, seed=5, process_index=1, local_batch=4)
  stream = [sampler.record(step, slot) for step in range(10) for slot in range(4)]
  for epoch in range(4):
    assert sorted(stream[10 * epoch:10 * epoch + 10]) == sorted(shard.tolist())
  assert stream[:10] != stream[10:20]  # Each epoch is shuffled afresh.


def test_stream_is_a_pure_function_of_seed_step_and_host():
  shard = np.arange(50)
  a = sampling.HostSampler(shard, seed=1, process_index=0, local_batch=4)
  b = sampling.HostSampler(shard, seed=1, process_index=0, local_batch=4)
  late = [b.record(40, s) for s in range(4)]  # b starts late: no state carried over.
  assert [a.record(40, s) for s in range(4)] == late
  other_seed = sampling.HostSampler(shard, seed=2, process_index=0, local_batch=4)
  assert [other_seed.record(s, 0) for s in range(20)] != [a.record(s, 0) for s in range(20)]
  assert all(a.record(3, 1, attempt) in shard for attempt in range(1, 20))
