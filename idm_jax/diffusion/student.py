"""The distilled student, whole: its grid and levels, how its output is read, its sampler's plan
and sampler, and the distillation loss that trains it from a teacher.

Training. The teacher runs its S-step solver (DPM-Solver++, or DDIM with any eta; trailing grid,
x0 clipped and projected onto the LR input at every step) from noise z to its output x_hat. The
student is the same network. At the teacher steps of the trailing 4-step grid, j * S / 4
(`teacher_levels`), it sees the teacher's own x_t, on the path from z, and is trained to give
x_hat:
    loss = | x0_student(x_t, gamma) - x_hat |   (L1, or squared with distill.loss = 'l2'),
averaged over the levels and the batch. At the blind level (t = T - 1) the student cannot see
which noise its teacher started from, so it learns the mean (L2) or median (L1) of the teacher's
outputs over that noise. On a deterministic path (eta 0) an exact student reproduces the teacher
from the other levels; with a stochastic teacher (DDIM, eta 1) x_hat is one draw among the
outputs reachable from x_t, and the L2 minimiser is their mean. The targets are the teacher's own
outputs, so one round of plain regression serves every number of student evaluations at every
scale, with no chain of rounds (progressive distillation) and no bootstrapped target
(consistency models).

Reading (`reading`). The output is x0 = recip * x_t - recipm1 * output, by level: noise, as the
teacher reads it, where gamma >= NOISE_MIN_GAMMA (the student starts there as the teacher's
one-step x0 prediction); x0 below; and with a zero input where gamma < BLIND_MAX_GAMMA, where
x_t is over 99% noise and the teacher's noise reading would amplify its errors up to 150 times.

Sampling (`run`) with k network evaluations:
  1. x0 = A at the blind level (a zero input): the mean of the teacher's outputs from the LR
     input alone;
  2. A re-noised to the refinement level t_r = T / 4 - 1 k - 1 times,
       x_i = gamma_r A + sigma_r z_i,   z_i = cos(2 pi i / (k - 1)) u + sin(2 pi i / (k - 1)) v,
     with u, v ~ N(0, I) per example, and x0 read from each x_i;
  3. the mean of those readings, each clipped and projected onto the LR input.
Every z_i is standard normal and two or more of them sum to zero, so what the student answers
linearly in the noise (invented texture, noise it did not remove) cancels in the mean. The
measurements behind these choices are in docs/experiments.md.
"""
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from idm_jax.config import diffusion as diffusion_config
from idm_jax.config import distill as distill_config
from idm_jax.diffusion import consistency
from idm_jax.diffusion import objective
from idm_jax.diffusion import scan_loop
from idm_jax.diffusion import schedules
from idm_jax.diffusion import solvers

# net(lr, y_t, gamma, p) -> output (B, H, W, 3): the teacher's predicted noise; the student's,
# read by `reading`.
Net = Callable[[jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]

# Where the output is read as noise (gamma at or above) and where the input is withheld (below).
NOISE_MIN_GAMMA = 0.25
BLIND_MAX_GAMMA = 0.1


# The grid.

def timesteps(num_timesteps: int) -> np.ndarray:
  """The sampler's two levels, (blind, refinement): the first and last of the trailing 4-step
  grid, T - 1 and T - 1 - floor(3T / 4) (1999 and 499 of 2000)."""
  grid = distill_config.STUDENT_GRID_STEPS
  return solvers.timesteps(num_timesteps, grid, 'trailing')[[0, grid - 1]]


def teacher_levels(teacher_steps: int) -> tuple[int, ...]:
  """The teacher steps whose inputs the student learns from: j * S / 4 (S = 20: 0, 5, 10, 15),
  so the first and last are at the sampler's two `timesteps`."""
  distill_config.check_teacher_steps(teacher_steps)
  grid = distill_config.STUDENT_GRID_STEPS
  return tuple(j * teacher_steps // grid for j in range(grid))


# The reading.

def reading(gamma: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(recip, recipm1, input_scale) at noise levels gamma: x0 = recip * x_t - recipm1 * output,
  the network seeing input_scale * x_t (float64, the shape of gamma)."""
  gamma = np.asarray(gamma, np.float64)
  noise = gamma >= NOISE_MIN_GAMMA
  recip = np.where(noise, 1.0 / gamma, 0.0)
  recipm1 = np.where(noise, np.sqrt(1.0 / gamma**2 - 1.0), -1.0)
  return recip, recipm1, np.where(gamma < BLIND_MAX_GAMMA, 0.0, 1.0)


# The sampler.

class Plan(NamedTuple):
  """Where and how the sampler reads the student; a pytree of float32 arrays, traced.

  Index 0 is the blind level, 1 the refinement level; the number of readings at the refinement
  level is the (static) length of `angles`.
  """
  gamma: np.ndarray  # (2,) noise levels, sqrt(alpha_bar).
  recip: np.ndarray  # (2,) as `reading` gives them.
  recipm1: np.ndarray  # (2,)
  input_scale: np.ndarray  # (2,) 0 at the blind level.
  angles: np.ndarray  # (k - 1,) the readings' noises on the circle through u and v.


def level_gammas(schedule: schedules.NoiseSchedule) -> np.ndarray:
  """The noise levels (2,) of the sampler's two `timesteps` under `schedule`; ValueError when
  the student cannot be read there (blind at the first, read as noise at the second)."""
  gamma = np.sqrt(np.asarray(schedule.alphas_cumprod, np.float64)[timesteps(
      schedule.num_timesteps)])
  recip, _, input_scale = reading(gamma)
  if input_scale[0] != 0 or recip[1] == 0:
    raise ValueError(f'this schedule puts the student levels at gamma {gamma.round(3).tolist()}: '
                     f'it needs gamma < {BLIND_MAX_GAMMA} at t = T - 1 and >= {NOISE_MIN_GAMMA} '
                     "at t = T / 4 - 1, as the configs' schedules do.")
  return gamma


def make_plan(schedule: schedules.NoiseSchedule, steps: int) -> Plan:
  """The plan of `steps` network evaluations (1: the blind estimate alone)."""
  if steps < 1:
    raise ValueError(f'sampler.steps = {steps}: a distilled student takes 1 evaluation or more.')
  gamma = level_gammas(schedule)
  recip, recipm1, input_scale = reading(gamma)
  angles = 2 * np.pi * np.arange(steps - 1) / max(steps - 1, 1)  # Empty for one evaluation.
  f32 = lambda v: np.asarray(v, np.float32)
  return Plan(f32(gamma), f32(recip), f32(recipm1), f32(input_scale), f32(angles))


def run(eps_fn: scan_loop.EpsFn, shape: tuple[int, ...], keys: jax.Array, plan: Plan, *,
        clip_x0: bool, project_x0: Callable[[jax.Array], jax.Array] | None = None,
        noise_sign: jax.Array | None = None) -> jax.Array:
  """The student's image (B, H, W, C) = shape; example b's noise from keys[b] (B,) alone.

  eps_fn(x, gamma) is the network's output; `project_x0` maps each reading onto the images
  consistent with the LR input (the mean of projected readings is projected: the projection is
  affine); `noise_sign` (B,), if given, negates example b's noises (-1), as `scan_loop.run`
  does.
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

  def add_reading(total, angle):
    z = jnp.cos(angle) * u + jnp.sin(angle) * v
    return total + read(signal + sigma * z, 1), None

  total, _ = jax.lax.scan(add_reading, jnp.zeros(shape, jnp.float32), plan.angles)
  return total / plan.angles.shape[0]


# The loss.

def teacher_table(schedule: schedules.NoiseSchedule, name: str, steps: int,
                  eta: float = 0.0) -> solvers.StepTable:
  """The teacher's solver on the trailing grid; eta: DDIM's."""
  t = solvers.timesteps(schedule.num_timesteps, steps, 'trailing')
  if name == 'dpm_solver++':
    return solvers.dpm_solver_pp_2m_table(schedule, t)
  if name == 'ddim':
    return solvers.ddim_table(schedule, t, eta)
  raise ValueError(f'teacher sampler {name!r}: choose dpm_solver++ or ddim.')


class Targets(NamedTuple):
  """What the teacher gives one batch: its inputs at the student levels and its final images."""
  inputs: jax.Array  # (L, B, H, W, 3): x at each level.
  gammas: np.ndarray  # (L,) their noise levels (static: the reading depends on them).
  final: jax.Array  # (B, H, W, 3): the teacher's output.


def teacher_targets(teacher: Net, lr: jax.Array, out_hw: tuple[int, int], p: jax.Array,
                    keys: jax.Array, table: solvers.StepTable, levels: tuple[int, ...], *,
                    projector: consistency.Projector | None, clip_x0: bool) -> Targets:
  """Runs the teacher from the noise of keys (B,), keeping its inputs at the `levels` steps.

  `teacher(lr, ...)` is called once per step; a model with `condition` / `denoise` is better
  wrapped so that it conditions once (as `distill_loss` does).
  """
  project = None if projector is None else (lambda x0: consistency.project(projector, x0, lr))
  x = jnp.zeros((lr.shape[0], *out_hw, 3), jnp.float32)
  final, traj = scan_loop.run(lambda y, gamma: teacher(lr, y, gamma, p), x, keys, table,
                              clip_x0=clip_x0, record_steps=levels, project_x0=project,
                              fresh_noise=not solvers.is_deterministic(table))
  return Targets(traj.x, np.asarray(table.gamma)[np.asarray(levels)], final)


def student_loss(student: Net, lr: jax.Array, p: jax.Array, targets: Targets,
                 loss_type: str) -> jax.Array:
  """The student at every level of every example against the teacher's output: one batch of
  L * B, so each teacher path (S evaluations) teaches L points. Targets carry no gradient."""
  inputs, final = jax.lax.stop_gradient((targets.inputs, targets.final))
  levels, batch = inputs.shape[:2]
  tile = lambda a: jnp.tile(a, (levels,) + (1,) * (a.ndim - 1))  # Level-major, like inputs.
  per_row = lambda v: jnp.asarray(np.repeat(v, batch), jnp.float32)[:, None, None, None]
  recip, recipm1, input_scale = map(per_row, reading(targets.gammas))
  x = inputs.reshape(levels * batch, *inputs.shape[2:])
  out = student(tile(lr), input_scale * x, jnp.repeat(jnp.asarray(targets.gammas, jnp.float32),
                                                      batch), tile(p)).astype(jnp.float32)
  return objective.pixel_loss(recip * x - recipm1 * out - tile(final), loss_type)


def distill_loss(student: Net, teacher, lr: jax.Array, out_hw: tuple[int, int], p: jax.Array,
                 key: jax.Array, config: ml_collections.ConfigDict) -> jax.Array:
  """The loss of one batch: `student` is called as a `Net` (the train step binds its dropout
  key), `teacher` is an IDM network in eval mode (`condition` / `denoise`).

  The teacher conditions on the LR input once for its S steps; the noise is drawn per example
  from split(key), so a row's targets do not depend on the batch it is in.
  """
  d = config.distill
  schedule = schedules.make_schedule(config.diffusion, np.float64)
  table = teacher_table(schedule, d.teacher_sampler, d.teacher_steps, d.teacher_eta)
  projector = consistency.make_projector(diffusion_config.resolve_sampler(config).consistency,
                                         lr.shape[1:3], out_hw)
  cond = jax.lax.stop_gradient(teacher.condition(lr, out_hw, p))
  targets = teacher_targets(lambda _, y, gamma, __: teacher.denoise(cond, y, gamma), lr, out_hw,
                            p, jax.random.split(key, lr.shape[0]), table,
                            teacher_levels(d.teacher_steps),
                            projector=projector, clip_x0=bool(config.sampler.clip_x0))
  return student_loss(student, lr, p, targets, d.loss)
