"""The training objective: predict the noise of y_t = gamma * y0 + sqrt(1 - gamma^2) * eps."""
from typing import Callable

import jax
import jax.numpy as jnp

from idm_jax.diffusion import schedules

# model(lr, y_t, gamma, p) -> predicted noise (B, H, W, 3).
Model = Callable[[jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]


def q_sample(y0: jax.Array, gamma: jax.Array, noise: jax.Array) -> jax.Array:
  """Forward process at noise level gamma = sqrt(alpha_bar): y0, noise (B, H, W, C), gamma (B,)."""
  g = gamma[:, None, None, None]
  return g * y0 + jnp.sqrt(1.0 - g**2) * noise


def sample_noise_level(key: jax.Array, batch_size: int,
                       schedule: schedules.NoiseSchedule) -> tuple[jax.Array, jax.Array]:
  """Per example: t uniform in {1..T}, gamma uniform between sqrt_alphas_cumprod_prev[t-1] and [t].

  The official code draws one t per batch; one per example has the same distribution for every
  example and a lower-variance batch loss. Returns t (B,) int32 and gamma (B,) float32.
  """
  key_t, key_u = jax.random.split(key)
  t = jax.random.randint(key_t, (batch_size,), 1, schedule.num_timesteps + 1)
  grid = jnp.asarray(schedule.sqrt_alphas_cumprod_prev, jnp.float32)
  lo, hi = grid[t], grid[t - 1]  # gamma decreases with t.
  gamma = lo + jax.random.uniform(key_u, (batch_size,)) * (hi - lo)
  return t, gamma


def noise_prediction_loss(model: Model, lr: jax.Array, hr: jax.Array, p: jax.Array,
                          gamma: jax.Array, noise: jax.Array, loss_type: str = 'l1') -> jax.Array:
  """Scalar loss of the predicted noise at given gamma (B,) and noise (B, H, W, 3).

  'l1' is the official sum of |eps - eps_hat| over (B * C * H * W), i.e. the mean; 'l2' the mean
  squared error. lr (B, h, w, 3) and hr (B, H, W, 3) are in [-1, 1]; p (B,) the scale input.
  """
  eps_hat = model(lr, q_sample(hr, gamma, noise), gamma, p)
  return pixel_loss(eps_hat.astype(jnp.float32) - noise, loss_type)


def pixel_loss(err: jax.Array, loss_type: str) -> jax.Array:
  """'l1': the mean absolute error; 'l2': the mean squared error."""
  if loss_type == 'l1':
    return jnp.mean(jnp.abs(err))
  if loss_type == 'l2':
    return jnp.mean(jnp.square(err))
  raise ValueError(f'unknown loss {loss_type!r}')


def training_loss(model: Model, lr: jax.Array, hr: jax.Array, p: jax.Array, key: jax.Array,
                  schedule: schedules.NoiseSchedule, loss_type: str = 'l1') -> jax.Array:
  """`noise_prediction_loss` at t, gamma and noise drawn from `key`."""
  key_level, key_noise = jax.random.split(key)
  _, gamma = sample_noise_level(key_level, hr.shape[0], schedule)
  noise = jax.random.normal(key_noise, hr.shape, jnp.float32)
  return noise_prediction_loss(model, lr, hr, p, gamma, noise, loss_type)
