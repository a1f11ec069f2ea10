"""Schedule quantities against closed forms computed independently in float64."""
import dataclasses
import math

import numpy as np
import pytest

from idm_jax.config import diffusion as config
from idm_jax.diffusion import schedules

T, START, END = 300, 1e-6, 1e-2


def _closed_form_betas(name):
  t = np.arange(T, dtype=np.float64)
  if name == 'linear':
    return START + (END - START) * t / (T - 1)
  if name == 'quad':
    return (math.sqrt(START) + (math.sqrt(END) - math.sqrt(START)) * t / (T - 1))**2
  warm = {'warmup10': 30, 'warmup50': 150}[name]
  return np.where(t < warm, START + (END - START) * t / (warm - 1), END)


@pytest.mark.parametrize('name', ['linear', 'quad', 'warmup10', 'warmup50'])
def test_betas_closed_form(name):
  np.testing.assert_allclose(schedules.make_betas(name, T, START, END), _closed_form_betas(name),
                             rtol=1e-12, atol=1e-15)


def test_cosine_alpha_bar_closed_form():
  s = 8e-3
  betas = schedules.make_betas('cosine', T, START, END, s)
  f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2)**2
  expected = np.array([f(t + 1) / f(0) for t in range(T)])
  abar = np.exp(np.cumsum(np.log1p(-betas)))
  unclipped = betas < 0.999
  assert betas.max() <= 0.999 and unclipped[:-1].all()
  np.testing.assert_allclose(abar[:-1], expected[:-1], rtol=1e-10)


def test_unknown_schedule_raises():
  with pytest.raises(ValueError, match='jsd'):
    schedules.make_betas('jsd', T, START, END)


@pytest.mark.parametrize('name', ['linear', 'cosine', 'warmup10'])
def test_derived_quantities_closed_form(name):
  betas = schedules.make_betas(name, T, START, END)
  sched = schedules.schedule_from_betas(betas, np.float64)
  abar = np.exp(np.cumsum(np.log1p(-betas)))
  abar_prev = np.concatenate([[1.0], abar[:-1]])
  np.testing.assert_allclose(sched.alphas_cumprod, abar, rtol=1e-10)
  np.testing.assert_allclose(sched.alphas_cumprod_prev, abar_prev, rtol=1e-10)
  assert sched.sqrt_alphas_cumprod_prev.shape == (T + 1,)
  np.testing.assert_allclose(sched.sqrt_alphas_cumprod_prev, np.sqrt(np.r_[1.0, abar]), rtol=1e-10)
  np.testing.assert_allclose(sched.sqrt_alphas_cumprod, abar**0.5, rtol=1e-10)
  np.testing.assert_allclose(sched.sqrt_one_minus_alphas_cumprod, (1 - abar)**0.5, rtol=1e-8)
  np.testing.assert_allclose(sched.log_one_minus_alphas_cumprod, np.log(1 - abar), rtol=1e-8)
  np.testing.assert_allclose(sched.sqrt_recip_alphas_cumprod, abar**-0.5, rtol=1e-10)
  np.testing.assert_allclose(sched.sqrt_recipm1_alphas_cumprod, (1 / abar - 1)**0.5, rtol=1e-8)
  # The posterior q(x_{t-1} | x_t, x0) as a product of Gaussians (t >= 1, where it is proper):
  # precision = 1 / (1 - abar_{t-1}) + alpha_t / beta_t,
  # mean = var * (sqrt(abar_{t-1}) x0 / (1 - abar_{t-1}) + sqrt(alpha_t) x_t / beta_t).
  var = 1 / (1 / (1 - abar_prev[1:]) + (1 - betas[1:]) / betas[1:])
  np.testing.assert_allclose(sched.posterior_variance[1:], var, rtol=1e-8)
  assert sched.posterior_variance[0] == 0
  np.testing.assert_allclose(sched.posterior_log_variance_clipped,
                             np.log(np.r_[1e-20, var]), rtol=1e-8)
  np.testing.assert_allclose(sched.posterior_mean_coef1[1:],
                             var * np.sqrt(abar_prev[1:]) / (1 - abar_prev[1:]), rtol=1e-8)
  np.testing.assert_allclose(sched.posterior_mean_coef2[1:],
                             var * np.sqrt(1 - betas[1:]) / betas[1:], rtol=1e-8)
  # At t = 0 the posterior mean is x0 itself.
  np.testing.assert_allclose([sched.posterior_mean_coef1[0], sched.posterior_mean_coef2[0]], [1, 0],
                             atol=1e-12)


def test_default_config_is_official_and_float32():
  sched = schedules.make_schedule(config.default_diffusion_config())
  assert sched.num_timesteps == 2000
  fields = [f.name for f in dataclasses.fields(sched)]
  assert all(getattr(sched, name).dtype == np.float32 for name in fields)
  np.testing.assert_allclose(sched.betas[[0, -1]], [1e-6, 1e-2], rtol=1e-6)
  sched64 = schedules.make_schedule(config.default_diffusion_config(), np.float64)
  for name in fields:
    np.testing.assert_array_equal(getattr(sched, name), getattr(sched64, name).astype(np.float32),
                                  err_msg=name)
