"""DDPM, DDIM and DPM-Solver++(2M) as tables of per-step coefficients of one update rule (a
distilled student's sampler is not a table: `student.py`).

Step i adds fresh noise, x = x + noise_i * z with z ~ N(0, I), evaluates the network at noise
level gamma_i on x, predicts
  x0 = recip_i * x - recipm1_i * eps          (clipped to [-1, 1] if asked),
and moves towards the next noise level with
  x_next = a_i * x + b_i * x0 + c_i * x0_prev,
where x0_prev is the previous step's prediction (used by the multistep solver only). noise_0 = 1
draws x_T itself (from x = 0); noise_i (i > 0) is the std of the previous step's ancestral noise.
The last step of every sampler lands on gamma = 1 with no noise left, so the final x is the last
(clipped) x0. Coefficients are computed in float64 and stored float32.
"""
from typing import NamedTuple

import ml_collections
import numpy as np

from idm_jax.diffusion import schedules


class StepTable(NamedTuple):
  """Per-step coefficients, each (S,) float32; a pytree, so it can be scanned over."""
  gamma: np.ndarray  # Noise level the network is conditioned on, sqrt(alpha_bar).
  recip: np.ndarray  # 1 / gamma.
  recipm1: np.ndarray  # sqrt(1 / gamma^2 - 1).
  a: np.ndarray
  b: np.ndarray
  c: np.ndarray
  noise: np.ndarray  # Std of the fresh noise added before the step; 1 at step 0 (x_T).


def is_deterministic(table: StepTable) -> bool:
  """Whether the table adds no noise after x_T (DDIM with eta 0, DPM-Solver++)."""
  return not np.any(np.asarray(table.noise)[1:])


def timesteps(num_timesteps: int, steps: int, spacing: str = 'leading') -> np.ndarray:
  """Decreasing discrete steps t_0 > ... > t_{S-1} in {0..T-1}, (S,) int64.

  'leading' is the official DDIM grid: {floor(i * T / S)} (200 steps of T=2000: 1990, 1980, ..., 0);
  'trailing' is {T - 1 - floor(i * T / S)} (T-1, ..., T/S - 1). Both give all T steps for S = T.
  """
  if not 1 <= steps <= num_timesteps:
    raise ValueError(f'steps must be in [1, {num_timesteps}], got {steps}')
  grid = np.arange(steps) * num_timesteps // steps
  if spacing == 'leading':
    return grid[::-1]
  if spacing == 'trailing':
    return num_timesteps - 1 - grid
  raise ValueError(f'unknown spacing {spacing!r}')


def _alpha_bar(schedule: schedules.NoiseSchedule, t: np.ndarray) -> np.ndarray:
  """alpha_bar at steps t in {-1, 0, ..., T-1}, where step -1 is the clean image (alpha_bar = 1)."""
  return np.append(1.0, np.asarray(schedule.alphas_cumprod, np.float64))[t + 1]


def _table(abar: np.ndarray, a, b, c, s) -> StepTable:
  """Packs float64 columns into a float32 table.

  abar (S,): alpha_bar at the network evaluations; s (S,): std of the noise each step adds after
  its update (0 on the last step, which returns x0).
  """
  cols = (np.sqrt(abar), np.sqrt(1.0 / abar), np.sqrt(1.0 / abar - 1.0), a, b, c,
          np.append(1.0, s[:-1]))
  return StepTable(*(np.asarray(col, np.float64).astype(np.float32) for col in cols))


def ddpm_table(schedule: schedules.NoiseSchedule) -> StepTable:
  """Ancestral sampling over all T steps (official `p_sample`): posterior mean and variance."""
  t = np.arange(schedule.num_timesteps)[::-1]
  f64 = lambda v: np.asarray(v, np.float64)[t]
  std = np.where(t > 0, np.exp(0.5 * f64(schedule.posterior_log_variance_clipped)), 0.0)
  return _table(f64(schedule.alphas_cumprod), f64(schedule.posterior_mean_coef2),
                f64(schedule.posterior_mean_coef1), np.zeros(len(t)), std)


def ddim_table(schedule: schedules.NoiseSchedule, t: np.ndarray, eta: float) -> StepTable:
  """DDIM (Song et al.) from steps t (S,) to the clean image, with sigma = eta * posterior std.

  eps is re-derived from the (possibly clipped) x0, so that eta = 1 on all T steps is DDPM.
  """
  ac = _alpha_bar(schedule, t)
  an = _alpha_bar(schedule, np.append(t[1:], -1))
  sigma = eta * np.sqrt((1.0 - an) / (1.0 - ac) * (1.0 - ac / an))
  a = np.sqrt(np.maximum(1.0 - an - sigma**2, 0.0) / (1.0 - ac))
  b = np.sqrt(an) - a * np.sqrt(ac)
  return _table(ac, a, b, np.zeros(len(t)), sigma)


def dpm_solver_pp_2m_table(schedule: schedules.NoiseSchedule, t: np.ndarray) -> StepTable:
  """DPM-Solver++(2M) (Lu et al. 2022), data prediction, from steps t (S,) to the clean image.

  With lambda = log(gamma / sigma) and h_i = lambda_{i+1} - lambda_i:
    x_{i+1} = sigma_{i+1} / sigma_i * x_i - gamma_{i+1} * expm1(-h_i) * D_i,
    D_i = (1 + 1 / (2 r_i)) x0_i - 1 / (2 r_i) x0_{i-1},  r_i = h_{i-1} / h_i,
  first order (D_0 = x0_0) on the first step; the last step, to sigma = 0, returns x0.
  """
  ac = _alpha_bar(schedule, t)
  alpha, sigma = np.sqrt(ac), np.sqrt(1.0 - ac)
  lam = np.log(alpha) - np.log(sigma)
  h = lam[1:] - lam[:-1]  # (S-1,) steps between network evaluations.
  a = np.append(sigma[1:] / sigma[:-1], 0.0)
  first_order = np.append(-alpha[1:] * np.expm1(-h), 1.0)
  half_inv_r = np.zeros(len(t))
  half_inv_r[1:-1] = 0.5 * h[1:] / h[:-1]
  return _table(ac, a, first_order * (1.0 + half_inv_r), -first_order * half_inv_r,
                np.zeros(len(t)))


def make_table(sampler: ml_collections.ConfigDict,
               schedule: schedules.NoiseSchedule) -> StepTable:
  """The table of `sampler.name` (`default_sampler_config()` fields); use a float64 schedule."""
  if sampler.name == 'ddpm':
    return ddpm_table(schedule)
  if sampler.name == 'distilled':
    raise ValueError("a distilled student has no step table: see student.make_plan.")
  t = timesteps(schedule.num_timesteps, sampler.steps, sampler.spacing)
  if sampler.name == 'ddim':
    return ddim_table(schedule, t, sampler.eta)
  if sampler.name == 'dpm_solver++':
    return dpm_solver_pp_2m_table(schedule, t)
  raise ValueError(f'unknown sampler {sampler.name!r}')
