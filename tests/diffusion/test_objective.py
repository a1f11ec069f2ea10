"""The forward process and the training objective."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from idm_jax.diffusion import objective
from idm_jax.diffusion import schedules
from tests.diffusion import stand_in


def _schedule(num_timesteps=50, dtype=np.float32):
  return schedules.schedule_from_betas(
      schedules.make_betas('linear', num_timesteps, 1e-4, 0.2), dtype)


def test_markov_chain_marginals_match_closed_form():
  """Running q(x_t | x_{t-1}) step by step gives N(sqrt(abar_t) x0, 1 - abar_t)."""
  sched = _schedule(20, np.float64)
  n = 200_000
  x0 = np.float64(0.7)
  x = np.full(n, x0)
  rng = np.random.default_rng(0)
  for t, beta in enumerate(sched.betas):
    x = np.sqrt(1 - beta) * x + np.sqrt(beta) * rng.standard_normal(n)
    if t in (0, 9, 19):
      tol = 5 / np.sqrt(n)
      np.testing.assert_allclose(x.mean(), sched.sqrt_alphas_cumprod[t] * x0, atol=tol)
      np.testing.assert_allclose(x.var(), 1 - sched.alphas_cumprod[t], atol=tol)


def test_q_sample_statistics():
  gamma = jnp.array([0.1, 0.5, 0.99])
  y0 = jnp.broadcast_to(jnp.array([0.3, -0.8, 1.0])[:, None, None, None], (3, 64, 64, 100))
  noise = stand_in.normal(y0.shape)
  y = objective.q_sample(y0, gamma, noise)
  np.testing.assert_allclose(y.mean(axis=(1, 2, 3)), gamma * y0[:, 0, 0, 0], atol=0.01)
  np.testing.assert_allclose(y.std(axis=(1, 2, 3)), jnp.sqrt(1 - gamma**2), rtol=0.01)


def test_noise_level_draws_lie_in_their_interval_per_example():
  sched = _schedule()
  t, gamma = objective.sample_noise_level(jax.random.key(1), 4096, sched)
  t, gamma = np.asarray(t), np.asarray(gamma)
  assert t.min() == 1 and t.max() == sched.num_timesteps
  grid = sched.sqrt_alphas_cumprod_prev
  assert np.all(gamma <= grid[t - 1]) and np.all(gamma >= grid[t])
  # Per example: distinct t and gamma within one batch; gamma uniform within its interval.
  assert len(np.unique(t[:16])) > 8 and len(np.unique(gamma[:16])) == 16
  u = (gamma - grid[t]) / (grid[t - 1] - grid[t])
  np.testing.assert_allclose([u.mean(), u.var()], [0.5, 1 / 12], atol=0.02)
  # The marginal of gamma: mean over t of the interval midpoints.
  np.testing.assert_allclose(gamma.mean(), np.mean((grid[1:] + grid[:-1]) / 2), atol=0.02)


@pytest.fixture(scope='module')
def model():
  return stand_in.StandIn()


def _inputs():
  lr = stand_in.uniform((2, 4, 4, 3), 1)
  hr = stand_in.uniform((2, 16, 16, 3), 2)
  noise = stand_in.normal(hr.shape, 3)
  return lr, hr, jnp.array([0.2, 1.0]), jnp.array([0.3, 0.9]), noise


@pytest.mark.parametrize('loss_type', ['l1', 'l2'])
def test_noise_prediction_loss_is_official_sum_over_bchw(model, loss_type):
  lr, hr, p, gamma, noise = _inputs()
  loss = objective.noise_prediction_loss(model, lr, hr, p, gamma, noise, loss_type)
  g = gamma[:, None, None, None]
  eps_hat = model(lr, g * hr + jnp.sqrt(1 - g**2) * noise, gamma, p)
  err = np.asarray(eps_hat - noise, np.float64)
  per_element = np.abs(err) if loss_type == 'l1' else err**2
  np.testing.assert_allclose(loss, per_element.sum() / err.size, rtol=1e-5)


def test_unknown_loss_raises(model):
  with pytest.raises(ValueError, match='huber'):
    objective.noise_prediction_loss(model, *_inputs(), loss_type='huber')


def test_training_loss_draws_from_its_key(model):
  lr, hr, p, _, _ = _inputs()
  sched = _schedule()
  key = jax.random.key(3)
  loss = objective.training_loss(model, lr, hr, p, key, sched, 'l2')
  key_level, key_noise = jax.random.split(key)
  _, gamma = objective.sample_noise_level(key_level, 2, sched)
  noise = jax.random.normal(key_noise, hr.shape)
  np.testing.assert_allclose(
      loss, objective.noise_prediction_loss(model, lr, hr, p, gamma, noise, 'l2'), rtol=1e-6)
  other = objective.training_loss(model, lr, hr, p, jax.random.key(4), sched, 'l2')
  assert float(jnp.abs(loss - other)) > 1e-4
