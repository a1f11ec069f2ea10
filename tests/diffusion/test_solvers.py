"""Step tables: official grids, DDIM/DDPM equivalence, DPM-Solver++(2M) order of accuracy."""
import numpy as np
import pytest

from idm_jax.config import diffusion as config
from idm_jax.diffusion import schedules
from idm_jax.diffusion import solvers


def _schedule(num_timesteps=100, dtype=np.float64):
  return schedules.schedule_from_betas(
      schedules.make_betas('linear', num_timesteps, 1e-4, 0.1), dtype)


def test_leading_grid_is_official_ddim_200():
  np.testing.assert_array_equal(solvers.timesteps(2000, 200), list(reversed(range(0, 2000, 10))))


@pytest.mark.parametrize('spacing', ['leading', 'trailing'])
@pytest.mark.parametrize('steps', [1, 7, 20, 100])
def test_grids_are_decreasing_and_in_range(spacing, steps):
  t = solvers.timesteps(100, steps, spacing)
  assert len(t) == steps and np.all(np.diff(t) < 0) and t.min() >= 0 and t.max() <= 99
  assert (t[-1] == 0) if spacing == 'leading' else (t[0] == 99)
  if steps == 100:
    np.testing.assert_array_equal(t, np.arange(100)[::-1])


def test_bad_steps_raise():
  with pytest.raises(ValueError):
    solvers.timesteps(100, 101)


def test_ddpm_table_is_official_p_sample():
  sched = _schedule()
  table = solvers.ddpm_table(sched)
  t = np.arange(100)[::-1]
  # The official p_sample conditions the network on sqrt_alphas_cumprod_prev[t + 1].
  np.testing.assert_allclose(table.gamma, sched.sqrt_alphas_cumprod_prev[t + 1], rtol=1e-6)
  np.testing.assert_allclose(table.recip, sched.sqrt_recip_alphas_cumprod[t], rtol=1e-6)
  np.testing.assert_allclose(table.recipm1, sched.sqrt_recipm1_alphas_cumprod[t], rtol=1e-6)
  np.testing.assert_allclose(table.b, sched.posterior_mean_coef1[t], rtol=1e-6)
  np.testing.assert_allclose(table.a, sched.posterior_mean_coef2[t], rtol=1e-6)
  # Step i adds the noise of step i - 1; step 0 draws x_T.
  np.testing.assert_allclose(table.noise[1:]**2, sched.posterior_variance[t[:-1]], rtol=1e-5)
  assert table.noise[0] == 1 and not table.c.any()


def test_ddim_eta1_full_schedule_is_ddpm():
  sched = _schedule()
  ddim = solvers.ddim_table(sched, solvers.timesteps(100, 100), eta=1.0)
  ddpm = solvers.ddpm_table(sched)
  # sigma^2 of DDIM(eta = 1) is the DDPM posterior variance, and so are the mean coefficients.
  np.testing.assert_allclose(ddim.noise[1:]**2, sched.posterior_variance[:0:-1], rtol=1e-5)
  for field in solvers.StepTable._fields:
    np.testing.assert_allclose(getattr(ddim, field), getattr(ddpm, field), rtol=2e-5, atol=1e-7,
                               err_msg=field)


def test_ddim_eta0_is_deterministic_and_lands_on_x0():
  sampler = config.default_sampler_config()
  sampler.name, sampler.steps, sampler.eta = 'ddim', 10, 0.0
  table = solvers.make_table(sampler, _schedule())
  assert table.noise[0] == 1 and not table.noise[1:].any()
  assert (table.a[-1], table.b[-1]) == (0.0, 1.0)


def test_dpm_solver_first_step_is_ddim_and_last_returns_x0():
  sched = _schedule()
  t = solvers.timesteps(100, 10)
  dpm = solvers.dpm_solver_pp_2m_table(sched, t)
  ddim = solvers.ddim_table(sched, t, eta=0.0)
  # DPM-Solver++(1) is DDIM: they agree on the first step, and on every step for x0 == x0_prev.
  np.testing.assert_allclose([dpm.a[0], dpm.b[0], dpm.c[0]], [ddim.a[0], ddim.b[0], 0], rtol=1e-6)
  np.testing.assert_allclose(dpm.b + dpm.c, ddim.b, rtol=1e-5)
  np.testing.assert_allclose(dpm.a, ddim.a, rtol=1e-6)
  assert (dpm.a[-1], dpm.b[-1], dpm.c[-1]) == (0.0, 1.0, 0.0)


def _ode_error(table_fn, steps):
  """Error of integrating the probability-flow ODE with x0(lambda) = cos(0.3 lambda).

  In data prediction the exact solution from x = 0 at lambda_0 is
  x(l) = sigma(l) * int_{l0}^{l} e^u x0(u) du, with int e^u cos(wu) du = e^u (cos wu + w sin wu)
  / (1 + w^2). The grid runs t-uniformly over t = 999..100, where lambda(t) is smooth.
  """
  w = 0.3
  table = table_fn(_schedule(1000), np.round(np.linspace(999, 100, steps + 1)).astype(int))
  gamma = table.gamma.astype(np.float64)
  lam = np.log(gamma / np.sqrt(1 - gamma**2))
  x, x0_prev = 0.0, 0.0
  for i in range(steps):  # Stop at t = 100, before the table's last step (to sigma = 0).
    x0 = np.cos(w * lam[i])
    x, x0_prev = table.a[i] * x + table.b[i] * x0 + table.c[i] * x0_prev, x0
  antiderivative = lambda u: np.exp(u) * (np.cos(w * u) + w * np.sin(w * u)) / (1 + w**2)
  exact = np.sqrt(1 - gamma[-1]**2) * (antiderivative(lam[-1]) - antiderivative(lam[0]))
  return abs(x - exact)


def test_dpm_solver_2m_is_second_order():
  ratio = lambda fn: _ode_error(fn, 24) / _ode_error(fn, 48)
  assert ratio(solvers.dpm_solver_pp_2m_table) > 3.5  # ~4: second order.
  assert ratio(lambda s, t: solvers.ddim_table(s, t, 0.0)) < 2.5  # ~2: first order.
