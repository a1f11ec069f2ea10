"""Scan samplers on the stand-in model: reference loop, keys, trajectories, compiled programs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from idm_jax.config import diffusion as config
from idm_jax.diffusion import sampling
from idm_jax.diffusion import scan_loop
from idm_jax.diffusion import schedules
from idm_jax.diffusion import solvers
from tests import float_rounding
from tests.diffusion import reference
from tests.diffusion import stand_in

T = 12


@pytest.fixture(scope='module')
def model():
  return stand_in.StandIn()


def _diffusion():
  d = config.default_diffusion_config()
  d.num_timesteps, d.linear_start, d.linear_end = T, 1e-4, 0.3
  return d


def _sampler(name, steps=5, **fields):
  s = config.default_sampler_config()
  s.name, s.steps, s.consistency = name, steps, 'none'
  s.update(fields)
  return s


def _lr(batch=2, size=4, seed=1):
  return stand_in.uniform((batch, size, size, 3), seed)


P = jnp.array([0.5, 1.0])


@pytest.mark.parametrize('name,eta', [('ddpm', 0.0), ('ddim', 0.5), ('dpm_solver++', 0.0)])
def test_scan_matches_python_loop_step_by_step(model, name, eta):
  sampler = _sampler(name, eta=eta, trajectory_every=1)
  key = jax.random.key(0)
  images, traj = sampling.sample(model, _lr(), (16, 16), P, key, sampler, _diffusion())
  t_seq = solvers.timesteps(T, sampler.steps, sampler.spacing)
  betas = schedules.make_betas('linear', T, 1e-4, 0.3)
  ref = reference.sample(model, _lr(), (16, 16), P, jax.random.split(key, 2), betas, name, t_seq,
                         eta)
  assert traj.x.shape == (len(ref), 2, 16, 16, 3)
  for i, (x, x0) in enumerate(ref):
    np.testing.assert_allclose(traj.x0[i], x0, atol=2e-5, err_msg=f'x0 at step {i}')
    np.testing.assert_allclose(traj.x[i], x, atol=2e-5, err_msg=f'x at step {i}')
  np.testing.assert_array_equal(images, traj.x0[-1])


def test_same_key_same_result_different_keys_differ(model):
  sampler, diffusion = _sampler('ddim', eta=1.0), _diffusion()
  run = lambda seed: sampling.sample(model, _lr(), (16, 16), P, jax.random.key(seed), sampler,
                                     diffusion)
  a, b, c = run(0), run(0), run(1)
  np.testing.assert_array_equal(a, b)
  assert float(jnp.abs(a - c).mean()) > 1e-3
  assert float(jnp.abs(a[0] - a[1]).mean()) > 1e-3  # Each example has its own noise.


@pytest.mark.parametrize('eta', [0.0, 1.0])
def test_ddim_eta0_ignores_step_noise(model, eta):
  """From one x_T, DDIM(eta = 0) gives one result whatever the step keys; eta > 0 does not."""
  table = solvers.make_table(_sampler('ddim', eta=eta),
                             schedules.make_schedule(_diffusion(), np.float64))
  table = table._replace(noise=np.r_[0.0, table.noise[1:]])  # Start from x_t, not from noise.
  cond = model.condition(_lr(), (16, 16), P)
  x_t = stand_in.normal((2, 16, 16, 3), 5)
  run = jax.jit(lambda keys: scan_loop.run(lambda x, g: model.denoise(cond, x, g), x_t, keys,
                                           table, clip_x0=True)[0])
  diff = float(jnp.abs(run(jax.random.split(jax.random.key(0), 2)) -
                       run(jax.random.split(jax.random.key(1), 2))).max())
  assert diff == 0.0 if eta == 0 else diff > 1e-3


def test_deterministic_tables_draw_x_T_alone_with_the_same_result(model):
  schedule = schedules.make_schedule(_diffusion(), np.float64)
  tables = {(name, eta): solvers.make_table(_sampler(name, eta=eta), schedule)
            for name, eta in (('ddim', 0.0), ('dpm_solver++', 0.0), ('ddim', 0.5), ('ddpm', 0.0))}
  assert [solvers.is_deterministic(t) for t in tables.values()] == [True] * 2 + [False] * 2
  cond = model.condition(_lr(), (16, 16), P)
  keys = jax.random.split(jax.random.key(4), 2)
  x = jnp.zeros((2, 16, 16, 3), jnp.float32)
  run = lambda table, fresh: scan_loop.run(lambda y, g: model.denoise(cond, y, g), x, keys, table,
                                           clip_x0=True, fresh_noise=fresh)[0]
  for name in ('ddim', 'dpm_solver++'):
    table = tables[name, 0.0]
    float_rounding.assert_equal_to_rounding(run(table, False), run(table, True))
  with pytest.raises(ValueError, match='fresh_noise=True'):
    run(tables['ddim', 0.5], False)


def test_ddim_eta1_on_all_steps_is_ddpm(model):
  diffusion, key = _diffusion(), jax.random.key(3)
  ddpm, _ = sampling.sample(model, _lr(), (16, 16), P, key,
                            _sampler('ddpm', trajectory_every=1), diffusion)
  ddim, _ = sampling.sample(model, _lr(), (16, 16), P, key,
                            _sampler('ddim', T, eta=1.0, trajectory_every=1), diffusion)
  np.testing.assert_allclose(ddim, ddpm, atol=1e-4)


def test_trajectory_keeps_every_kth_step_and_the_last(model):
  diffusion, key = _diffusion(), jax.random.key(0)
  _, every = sampling.sample(model, _lr(), (16, 16), P, key,
                             _sampler('dpm_solver++', trajectory_every=1), diffusion)
  images, traj = sampling.sample(model, _lr(), (16, 16), P, key,
                                 _sampler('dpm_solver++', trajectory_every=3), diffusion)
  assert traj.x.shape == traj.x0.shape == (2, 2, 16, 16, 3)  # After steps 3 and 5.
  float_rounding.assert_equal_to_rounding(traj.x, every.x[np.array([2, 4])])
  float_rounding.assert_equal_to_rounding(traj.x0, every.x0[np.array([2, 4])])
  np.testing.assert_array_equal(images, traj.x0[-1])


def test_compiled_sampler_is_sample(model):
  """`compile_sample` from shapes alone runs the program `sample` runs: the same images, its
  trajectory too, and a memory plan to read."""
  sampler, diffusion, key = _sampler('ddim', eta=1.0, trajectory_every=2), _diffusion(), \
      jax.random.key(4)
  lr = _lr()
  compiled = sampling.compile_sample(model, jax.ShapeDtypeStruct(lr.shape, lr.dtype), (16, 12),
                                     jax.ShapeDtypeStruct(P.shape, P.dtype), sampler, diffusion)
  images, traj = compiled.run(lr, P, key)
  expected, expected_traj = sampling.sample(model, lr, (16, 12), P, key, sampler, diffusion)
  float_rounding.assert_equal_to_rounding(images, expected)
  float_rounding.assert_equal_to_rounding(traj.x0, expected_traj.x0)
  assert images.shape == (2, 16, 12, 3)
  assert compiled.compiled.memory_analysis().temp_size_in_bytes > 0


@pytest.mark.parametrize('name,tiled', [('ddim', False), ('dpm_solver++', True)])
def test_mean_of_k_is_the_mean_of_k_samples_from_split_keys(model, name, tiled):
  sampler = _sampler(name, eta=1.0, mean_of=3, tile_size=10, tile_overlap=4)
  keys = jax.random.split(jax.random.key(3), 2)
  mean = sampling.sample(model, _lr(), (16, 16), P, keys, sampler, _diffusion(), tiled=tiled)
  single = _sampler(name, eta=1.0, tile_size=10, tile_overlap=4)
  draws = [sampling.sample(model, _lr()[b:b + 1].repeat(3, axis=0), (16, 16),
                           jnp.full((3,), P[b]), jax.random.split(keys[b], 3), single,
                           _diffusion(), tiled=tiled) for b in range(2)]
  assert mean.shape == (2, 16, 16, 3)
  float_rounding.assert_equal_to_rounding(mean, jnp.stack([d.mean(axis=0) for d in draws]))
  assert float(jnp.abs(draws[0][0] - draws[0][1]).max()) > 1e-3  # The draws differ.


def test_antithetic_mean_is_the_mean_of_pairs_of_opposite_noise(model):
  sampler = _sampler('ddim', eta=1.0, mean_of=4, antithetic=True)
  keys = jax.random.split(jax.random.key(5), 2)
  mean = sampling.sample(model, _lr(), (16, 16), P, keys, sampler, _diffusion())
  t_seq = solvers.timesteps(T, sampler.steps, sampler.spacing)
  betas = schedules.make_betas('linear', T, 1e-4, 0.3)
  for b in range(2):
    lr = _lr()[b:b + 1].repeat(2, axis=0)  # The pairs of example b: split(keys[b], 2).
    p = jnp.full((2,), P[b])
    pair_keys = jax.random.split(keys[b], 2)
    draws = [reference.sample(model, lr, (16, 16), p, pair_keys, betas, 'ddim', t_seq, 1.0,
                              sign=sign)[-1][1] for sign in (1.0, -1.0)]
    np.testing.assert_allclose(mean[b], jnp.concatenate(draws).mean(axis=0), atol=2e-5)
    assert float(jnp.abs(draws[0] - draws[1]).max()) > 1e-3  # The twins differ.


def test_antithetic_pairs_cancel_noise_a_linear_network_answers_linearly():
  """For an affine network and no clipping, the output is affine in the noise: a pair's mean
  is the noise-free path (every draw multiplied by 0)."""
  eps_fn = lambda x, gamma: 0.6 * x + 0.1 * gamma[:, None, None, None]
  table = solvers.ddim_table(schedules.make_schedule(_diffusion(), np.float64),
                             solvers.timesteps(T, 5), eta=1.0)
  keys = jnp.repeat(jax.random.split(jax.random.key(2), 3), 2)
  x = jnp.zeros((6, 8, 8, 3))
  pairs, _ = scan_loop.run(eps_fn, x, keys, table, clip_x0=False,
                           noise_sign=jnp.tile(jnp.array([1.0, -1.0]), 3))
  noise_free, _ = scan_loop.run(eps_fn, x[:1], keys[:1], table._replace(noise=0 * table.noise),
                                clip_x0=False)
  np.testing.assert_allclose(pairs.reshape(3, 2, 8, 8, 3).mean(axis=1),
                             jnp.broadcast_to(noise_free, (3, 8, 8, 3)), atol=1e-5)
  assert float(jnp.abs(pairs[0] - pairs[2]).max()) > 0.1  # Each sample is noisy.


def test_mean_of_needs_a_positive_count_and_no_trajectory(model):
  for fields in ({'mean_of': 0}, {'mean_of': 2, 'trajectory_every': 1},
                 {'mean_of': 3, 'antithetic': True}):
    with pytest.raises(ValueError, match='mean_of'):
      sampling.sample(model, _lr(), (16, 16), P, jax.random.key(0), _sampler('ddim', **fields),
                      _diffusion())
