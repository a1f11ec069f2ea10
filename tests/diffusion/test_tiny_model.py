"""The samplers on the real network (tiny config): reference loop, traces, calls, one tile."""
import types

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from idm_jax.config import diffusion as config
from tests.tiny_model import tiny_model_config
from idm_jax.diffusion import sampling
from idm_jax.diffusion import schedules
from idm_jax.diffusion import solvers
from idm_jax.models.idm import IDM
from tests import float_rounding
from tests.diffusion import reference
from tests.diffusion import stand_in

T = 50
_DENOISE_GAMMAS = []  # Every gamma (B,) the network was run at, in call order.
_CONDITION_CALLS = []
_CONDITION_TRACES = []


def _tiny_idm() -> IDM:
  """IDM(tiny_model_config()) with seeded fan-in-scaled weights.

  Built with `nnx.eval_shape` and filled from numpy: the eager initialiser takes minutes on a
  2-core CPU (every parameter shape compiles its own threefry kernel), and sampling tests need a
  real network, not its initial distribution.
  """
  graphdef, state = nnx.split(nnx.eval_shape(lambda: IDM(tiny_model_config(), rngs=nnx.Rngs(0))))
  rng = np.random.default_rng(0)

  def fill(path, leaf):
    shape = leaf.shape
    if len(shape) > 1:
      return jnp.asarray(rng.standard_normal(shape) / np.sqrt(np.prod(shape[:-1])), jnp.float32)
    offset = 1.0 if jax.tree_util.keystr(path).endswith("['scale'].value") else 0.0
    return jnp.asarray(offset + 0.1 * rng.standard_normal(shape), jnp.float32)

  return nnx.merge(graphdef, jax.tree_util.tree_map_with_path(fill, state))


class _Counted(nnx.Module):
  """The IDM API around a model; records network runs and fails on a second sampler trace."""

  def __init__(self, model):
    self.model = model

  @chex.assert_max_traces(n=1)
  def condition(self, lr, out_hw, p):
    _CONDITION_TRACES.append(tuple(out_hw))  # Python runs here only while tracing.
    jax.debug.callback(lambda: _CONDITION_CALLS.append(1))
    return self.model.condition(lr, out_hw, p)

  def denoise(self, cond, y, gamma):
    jax.debug.callback(lambda g: _DENOISE_GAMMAS.append(np.asarray(g)), gamma)
    return self.model.denoise(cond, y, gamma)


@pytest.fixture(scope='module')
def model():
  return _Counted(_tiny_idm())


@pytest.fixture(scope='module')
def compiled_network(model):
  """The bare network's two methods, jitted for the reference loop (eager dispatch is slower)."""
  graphdef, state = nnx.split(model.model)
  condition = jax.jit(lambda lr, p: nnx.merge(graphdef, state).condition(lr, (16, 16), p))
  denoise = jax.jit(lambda c, y, g: nnx.merge(graphdef, state).denoise(c, y, g))
  return types.SimpleNamespace(condition=lambda lr, out_hw, p: condition(lr, p), denoise=denoise)


@pytest.fixture(autouse=True)
def _fresh_counters():
  chex.clear_trace_counter()
  _DENOISE_GAMMAS.clear()
  _CONDITION_CALLS.clear()
  _CONDITION_TRACES.clear()


def _diffusion():
  d = config.default_diffusion_config()
  d.num_timesteps = T
  return d


def _sampler(name, **fields):
  s = config.default_sampler_config()
  s.name, s.steps, s.trajectory_every, s.consistency = name, 5, 1, 'none'
  s.update(fields)
  return s


LR = stand_in.uniform((2, 4, 4, 3), 1)
P = jnp.array([1.0, 0.6])


@pytest.mark.parametrize('name', ['dpm_solver++', 'ddim'])  # One compiled program for both.
def test_scan_matches_python_loop_step_by_step(model, compiled_network, name):
  key = jax.random.key(0)
  images, traj = sampling.sample(model, LR, (16, 16), P, key, _sampler(name), _diffusion())
  betas = schedules.make_betas('linear', T, 1e-6, 1e-2)
  ref = reference.sample(compiled_network, LR, (16, 16), P, jax.random.split(key, 2), betas, name,
                         solvers.timesteps(T, 5))
  assert len(ref) == traj.x.shape[0] == 5
  for i, (x, x0) in enumerate(ref):
    np.testing.assert_allclose(traj.x0[i], x0, atol=1e-4, err_msg=f'x0 at step {i}')
    np.testing.assert_allclose(traj.x[i], x, atol=1e-4, err_msg=f'x at step {i}')
  np.testing.assert_array_equal(images, traj.x0[-1])


def test_network_runs_once_per_step_and_conditioning_once(model):
  sampler = _sampler('dpm_solver++')
  sampling.sample(model, LR, (16, 16), P, jax.random.key(2), sampler, _diffusion())
  jax.effects_barrier()
  table = solvers.make_table(sampler, schedules.make_schedule(_diffusion(), np.float64))
  assert len(_CONDITION_CALLS) == 1 and len(_DENOISE_GAMMAS) == sampler.steps
  np.testing.assert_allclose(sorted(g[0] for g in _DENOISE_GAMMAS), sorted(table.gamma))


@pytest.mark.parametrize('out_hw', [(16, 16), (12, 20)])
def test_one_trace_per_shape(model, out_hw):
  sampler, diffusion = _sampler('dpm_solver++'), _diffusion()
  for seed, p in [(0, P), (1, P[::-1]), (2, P)]:  # New keys and scales: no retrace.
    sampling.sample(model, LR, out_hw, p, jax.random.key(seed), sampler, diffusion)
  assert _CONDITION_TRACES.count(out_hw) <= 1  # chex also raises on a second trace.
  assert len(_CONDITION_CALLS) == 3  # Three runs, each conditioning once.


def test_one_tile_equals_untiled(model):
  sampler, diffusion, key = _sampler('dpm_solver++'), _diffusion(), jax.random.key(3)
  untiled = sampling.sample(model, LR, (16, 16), P, key, sampler, diffusion, tiled=False)
  chex.clear_trace_counter()  # The tiled program is a second program, traced once.
  tiled = sampling.sample(model, LR, (16, 16), P, key, sampler, diffusion, tiled=True)
  for a, b in zip(jax.tree.leaves(untiled), jax.tree.leaves(tiled)):
    float_rounding.assert_equal_to_rounding(b, a)


def test_per_example_keys_make_an_image_independent_of_its_batch(model):
  """With B keys, example b of a batch equals the same example sampled alone with keys[b]."""
  sampler, diffusion = _sampler('dpm_solver++', trajectory_every=0), _diffusion()
  keys = jax.random.split(jax.random.key(4), 2)
  batched = sampling.sample(model, LR, (16, 16), P, keys, sampler, diffusion)
  chex.clear_trace_counter()  # Batch 1 is a second program.
  alone = sampling.sample(model, LR[1:], (16, 16), P[1:], keys[1:], sampler, diffusion)
  np.testing.assert_allclose(batched[1:], alone, atol=1e-5)
  # The same key, given once instead of per example, splits into other keys: other noise.
  one_key = sampling.sample(model, LR, (16, 16), P, keys[0], sampler, diffusion)
  assert float(jnp.abs(one_key - batched).max()) > 0.1
  # A legacy uint32 key of shape (2,) is one key, not two, even for a batch of 2.
  legacy = sampling.sample(model, LR, (16, 16), P, jax.random.key_data(keys[0]), sampler,
                           diffusion)
  float_rounding.assert_equal_to_rounding(legacy, one_key)
  with pytest.raises(ValueError, match=r'pass one key or 2 keys'):
    sampling.sample(model, LR, (16, 16), P, keys[:1], sampler, diffusion)
