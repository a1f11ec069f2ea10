"""Noise schedules: betas and every quantity derived from them, computed in float64.

Indexing follows the official code: step t in {0, ..., T-1} has
alpha_bar_t = prod_{s<=t} (1 - beta_s), and `sqrt_alphas_cumprod_prev` (length T+1) =
sqrt([1, alpha_bar_0, ..., alpha_bar_{T-1}]) is the grid of noise levels gamma the network is
conditioned on: gamma at step t is sqrt_alphas_cumprod_prev[t+1].
"""
import math

import flax.struct
import ml_collections
import numpy as np


def make_betas(schedule: str, num_timesteps: int, linear_start: float, linear_end: float,
               cosine_s: float = 8e-3) -> np.ndarray:
  """The betas of a named schedule, (T,) float64."""
  if schedule == 'linear':
    return np.linspace(linear_start, linear_end, num_timesteps, dtype=np.float64)
  if schedule == 'quad':
    return np.linspace(linear_start**0.5, linear_end**0.5, num_timesteps, dtype=np.float64)**2
  if schedule in ('warmup10', 'warmup50'):
    warmup = int(num_timesteps * {'warmup10': 0.1, 'warmup50': 0.5}[schedule])
    betas = np.full(num_timesteps, linear_end, dtype=np.float64)
    betas[:warmup] = np.linspace(linear_start, linear_end, warmup, dtype=np.float64)
    return betas
  if schedule == 'cosine':
    # Nichol & Dhariwal: alpha_bar(t) = cos^2((t/T + s) / (1 + s) * pi/2), betas clipped at 0.999.
    f = np.cos((np.arange(num_timesteps + 1, dtype=np.float64) / num_timesteps + cosine_s) /
               (1 + cosine_s) * math.pi / 2)**2
    return np.minimum(1 - f[1:] / f[:-1], 0.999)
  raise ValueError(f'unknown noise schedule {schedule!r}')


@flax.struct.dataclass
class NoiseSchedule:
  """Per-step diffusion quantities, each (T,) except `sqrt_alphas_cumprod_prev` (T+1,)."""
  betas: np.ndarray
  alphas_cumprod: np.ndarray
  alphas_cumprod_prev: np.ndarray  # [1, alpha_bar_0, ..., alpha_bar_{T-2}].
  sqrt_alphas_cumprod_prev: np.ndarray  # (T+1,): the gamma grid, 1 at index 0.
  sqrt_alphas_cumprod: np.ndarray
  sqrt_one_minus_alphas_cumprod: np.ndarray
  log_one_minus_alphas_cumprod: np.ndarray
  sqrt_recip_alphas_cumprod: np.ndarray
  sqrt_recipm1_alphas_cumprod: np.ndarray
  posterior_variance: np.ndarray  # Of q(x_{t-1} | x_t, x_0); 0 at t = 0.
  posterior_log_variance_clipped: np.ndarray  # log(max(variance, 1e-20)), as the official code.
  posterior_mean_coef1: np.ndarray  # Multiplies x_0.
  posterior_mean_coef2: np.ndarray  # Multiplies x_t.

  @property
  def num_timesteps(self) -> int:
    return self.betas.shape[0]


def schedule_from_betas(betas: np.ndarray, dtype=np.float32) -> NoiseSchedule:
  """Derives every quantity from (T,) betas in float64, then casts to `dtype`."""
  betas = np.asarray(betas, dtype=np.float64)
  alphas = 1.0 - betas
  abar = np.cumprod(alphas)
  abar_prev = np.append(1.0, abar[:-1])
  posterior_variance = betas * (1.0 - abar_prev) / (1.0 - abar)
  quantities = dict(
      betas=betas,
      alphas_cumprod=abar,
      alphas_cumprod_prev=abar_prev,
      sqrt_alphas_cumprod_prev=np.sqrt(np.append(1.0, abar)),
      sqrt_alphas_cumprod=np.sqrt(abar),
      sqrt_one_minus_alphas_cumprod=np.sqrt(1.0 - abar),
      log_one_minus_alphas_cumprod=np.log(1.0 - abar),
      sqrt_recip_alphas_cumprod=np.sqrt(1.0 / abar),
      sqrt_recipm1_alphas_cumprod=np.sqrt(1.0 / abar - 1.0),
      posterior_variance=posterior_variance,
      posterior_log_variance_clipped=np.log(np.maximum(posterior_variance, 1e-20)),
      posterior_mean_coef1=betas * np.sqrt(abar_prev) / (1.0 - abar),
      posterior_mean_coef2=(1.0 - abar_prev) * np.sqrt(alphas) / (1.0 - abar),
  )
  return NoiseSchedule(**{k: v.astype(dtype) for k, v in quantities.items()})


def make_schedule(config: ml_collections.ConfigDict, dtype=np.float32) -> NoiseSchedule:
  """The schedule of a diffusion config (`default_diffusion_config()` fields), stored as `dtype`."""
  betas = make_betas(config.schedule, config.num_timesteps, config.linear_start,
                     config.linear_end, config.cosine_s)
  return schedule_from_betas(betas, dtype)
