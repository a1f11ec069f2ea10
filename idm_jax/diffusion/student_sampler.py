"""The distilled student's k-evaluation sampler: one blind estimate, then the mean of k - 1
readings of it re-noised on a circle of noises.

A student of `diffusion/distillation.py` has learnt, at the levels it is read at, the mean of its
teacher's outputs from there. With k network evaluations it
  1. reads x0 = A at the blind level (t = T - 1, a zero input): the mean of the teacher's outputs
     over all its starting noises, from the LR input alone;
  2. re-noises A to the refinement level t_r = T / 4 - 1 (`timesteps`) k - 1 times,
       x_i = gamma_r A + sigma_r z_i,   z_i = cos(2 pi i / (k - 1)) u + sin(2 pi i / (k - 1)) v,
     with u, v ~ N(0, I) per example, and reads x0 from each x_i (as noise: gamma_r >= 0.25);
  3. returns the mean of those k - 1 readings, every one clipped and projected onto the LR input.
Every z_i is standard normal, and two or more of them sum to zero, to float rounding (two: an
antithetic pair), so what the student answers linearly in the noise (invented texture, noise it
did not remove) cancels in the mean, which estimates the mean of its answers over the noise at
t_r. (With `sampler.mean_of`, every draw repeats the blind estimate, and antithetic twins repeat
a pair's points: more readings are the cheaper way to a smoother mean.)

Not a chain of DDIM steps, as the teacher takes: each further level of a chain reads a fresh
noise the student must tell from detail, and the chain lost to the blind estimate alone.
t_r = T/4 - 1 is a level the student trained at. The measurements: docs/experiments.md.
"""
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from idm_jax.diffusion import scan_loop
from idm_jax.diffusion import schedules
from idm_jax.diffusion import solvers


class StudentPlan(NamedTuple):
  """Where and how the student is read; a pytree of float32 arrays, traced by the sampler.

  Index 0 is the blind level, 1 the refinement level; the number of readings at the refinement
  level is the (static) length of `angles`.
  """
  gamma: np.ndarray  # (2,) noise levels, sqrt(alpha_bar).
  recip: np.ndarray  # (2,) x0 = recip * x_t - recipm1 * output (`solvers.student_reading`).
  recipm1: np.ndarray  # (2,)
  input_scale: np.ndarray  # (2,) the network sees input_scale * x_t: 0 at the blind level.
  angles: np.ndarray  # (k - 1,) the readings' noises on the circle through u and v.


def timesteps(num_timesteps: int) -> np.ndarray:
  """The student's two levels, (blind, refinement): the first and last of the trailing 4-step
  grid, T - 1 and T - 1 - floor(3T / 4) (T / 4 - 1 when 4 divides T; 1999 and 499 of 2000)."""
  return solvers.timesteps(num_timesteps, 4, 'trailing')[[0, 3]]


def make_plan(schedule: schedules.NoiseSchedule, steps: int) -> StudentPlan:
  """The plan of `steps` network evaluations (1: the blind estimate alone)."""
  if steps < 1:
    raise ValueError(f'sampler.steps = {steps}: a distilled student takes 1 evaluation or more.')
  gamma = np.sqrt(np.asarray(schedule.alphas_cumprod, np.float64)[timesteps(
      schedule.num_timesteps)])
  recip, recipm1, input_scale = solvers.student_reading(gamma)
  if input_scale[0] != 0 or recip[1] == 0:
    raise ValueError(f'this schedule puts the student levels at gamma {gamma.round(3).tolist()}: '
                     f'it needs gamma < {solvers.STUDENT_BLIND_MAX_GAMMA} at t = T - 1 and >= '
                     f'{solvers.STUDENT_NOISE_MIN_GAMMA} at t = T / 4 - 1, as the configs\' '
                     'schedules do.')
  angles = 2 * np.pi * np.arange(steps - 1) / max(steps - 1, 1)  # Empty for one evaluation.
  f32 = lambda v: np.asarray(v, np.float32)
  return StudentPlan(f32(gamma), f32(recip), f32(recipm1), f32(input_scale), f32(angles))


def run(eps_fn: scan_loop.EpsFn, shape: tuple[int, ...], keys: jax.Array, plan: StudentPlan, *,
        clip_x0: bool, project_x0: Callable[[jax.Array], jax.Array] | None = None,
        noise_sign: jax.Array | None = None) -> jax.Array:
  """The student's image (B, H, W, C) = shape; example b's noise from keys[b] (B,) alone.

  eps_fn(x, gamma) is the network's output; `project_x0` maps each reading onto the images
  consistent with the LR input; `noise_sign` (B,), if given, negates example b's noises (-1),
  as `scan_loop.run` does.
  """
  batch = shape[0]

  def read(x, level):
    out = eps_fn(plan.input_scale[level] * x, jnp.full((batch,), plan.gamma[level]))
    return scan_loop.predicted_x0(x, out, plan.recip[level], plan.recipm1[level],
                                  clip_x0=clip_x0, project_x0=project_x0)

  estimate = read(jnp.zeros(shape, jnp.float32), 0)
  if plan.angles.shape[0] == 0:
    return estimate
  u_keys, v_keys = scan_loop.split_keys(keys)
  u, v = (scan_loop.normal(k, shape[1:]) for k in (u_keys, v_keys))
  if noise_sign is not None:
    u, v = (noise_sign[:, None, None, None] * w for w in (u, v))
  signal, sigma = plan.gamma[1] * estimate, jnp.sqrt(1.0 - plan.gamma[1] ** 2)

  def reading(total, angle):
    z = jnp.cos(angle) * u + jnp.sin(angle) * v
    return total + read(signal + sigma * z, 1), None

  total, _ = jax.lax.scan(reading, jnp.zeros(shape, jnp.float32), plan.angles)
  return total / plan.angles.shape[0]
