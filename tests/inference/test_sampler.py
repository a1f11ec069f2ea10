"""Requests batched into calls (closed form), and the sampler answering each request as if alone."""
import chex
import jax
import ml_collections
import numpy as np
import pytest

from idm_jax import mesh as mesh_lib
from idm_jax.config import diffusion as diffusion_config
from idm_jax.diffusion import sampling
from idm_jax.inference import batching
from idm_jax.inference import sampler as inference_sampler
from tests import float_rounding
from tests.diffusion import stand_in


def _request(h, out_hw, seed):
  lr = np.asarray(stand_in.uniform((1, h, h, 3), seed))[0]
  return batching.Request(lr, out_hw, 0.1 * seed, jax.random.key(seed))


def test_calls_group_by_size_fix_the_batch_and_pad_with_the_last_request():
  requests = [_request(4, (8, 8), 0), _request(4, (12, 12), 1), _request(4, (8, 8), 2),
              _request(3, (8, 8), 3), _request(4, (8, 8), 4), _request(4, (8, 8), 5),
              _request(4, (8, 8), 6)]
  calls = list(batching.calls(requests, max_batch=3))
  # (4, 8x8): 0, 2, 4, 5, 6 in calls of 3, the last padded with 6; then (4, 12x12); (3, 8x8).
  assert [c.members for c in calls] == [[0, 2, 4], [5, 6], [1], [3]]
  assert [c.lr.shape[0] for c in calls] == [3, 3, 1, 1]
  np.testing.assert_array_equal(calls[1].lr[2], requests[6].lr)
  np.testing.assert_allclose(calls[1].p, [0.5, 0.6, 0.6])
  np.testing.assert_array_equal(calls[0].keys[1], jax.random.key_data(requests[2].key))
  assert calls[2].out_hw == (12, 12)
  # Split over 4 devices: a multiple of 4, no larger than the group needs.
  assert [c.lr.shape[0] for c in batching.calls(requests, max_batch=3, multiple=4)] == [4, 4, 4, 4]
  assert [c.lr.shape[0] for c in batching.calls(requests, max_batch=8, multiple=2)] == [6, 2, 2]
  # Balanced: 5 requests with room for 4 run as 3 + 3 (one padding row), not 4 + 4.
  assert [len(c.members) for c in batching.calls(requests, max_batch=4)] == [3, 2, 1, 1]
  assert [c.lr.shape[0] for c in batching.calls(requests, max_batch=4)] == [3, 3, 1, 1]
  with pytest.raises(ValueError, match='at least 1'):
    next(batching.calls(requests, max_batch=0))


class _TracedStandIn(stand_in.StandIn):
  """Counts traces of the sampler: `condition` is traced once per compiled sampler."""
  condition = chex.assert_max_traces(stand_in.StandIn.condition, n=2)


def _config():
  c = ml_collections.ConfigDict()
  c.sampler = diffusion_config.default_sampler_config()
  c.sampler.name, c.sampler.steps, c.sampler.eta = 'ddim', 4, 1.0
  c.diffusion = diffusion_config.default_diffusion_config()
  c.diffusion.num_timesteps, c.diffusion.linear_start, c.diffusion.linear_end = 12, 1e-4, 0.3
  c.data = ml_collections.ConfigDict({'degradation': 'matlab_bicubic'})
  return c


@pytest.mark.parametrize('devices', [1, 2])
def test_each_request_gets_its_own_image_with_one_compile_per_size(devices):
  config = _config()
  mesh = None if devices == 1 else mesh_lib.make_mesh(ml_collections.ConfigDict(
      {'data': devices, 'param_sharding': 'replicated', 'fsdp_min_size': 0}))
  if mesh is None:
    sampler = inference_sampler.Sampler(_TracedStandIn(), config)
  else:
    sampler = inference_sampler.Sampler(stand_in.StandIn(), config, mesh)
  assert sampler.settings.consistency == 'matlab_bicubic'  # 'auto': the data's degradation.
  requests = [_request(4, (16, 16), 1), _request(4, (12, 16), 2), _request(4, (16, 16), 3),
              _request(4, (16, 16), 4)]
  chex.clear_trace_counter()
  for _ in range(2):  # Two sizes: two traces at most, over both passes.
    answered = dict(sampler.run(requests, per_device_batch=2))
  assert sorted(answered) == [0, 1, 2, 3]
  for i, r in enumerate(requests):
    alone = sampling.sample(stand_in.StandIn(), r.lr[None], r.out_hw, np.array([r.p]),
                            r.key[None], sampler.settings, config.diffusion)
    assert answered[i].shape == (*r.out_hw, 3)
    float_rounding.assert_equal_to_rounding(answered[i], alone[0])
