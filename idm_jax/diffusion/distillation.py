"""Few-step distillation at continuous scales: the student's targets and loss.

The teacher runs its S-step solver (DPM-Solver++, or DDIM with any eta; trailing grid, x0
clipped and projected onto the LR input at every step) from noise z to its output x_hat. The
student is the same network. At the teacher's steps j * S / 4 (`student_levels`; their first and
last, t = T - 1 and T / 4 - 1, are the blind and refinement levels its sampler reads:
`student_sampler`) it sees the teacher's own x_t, on the path from z, and is trained to give
x_hat:
    loss = | x0_student(x_t, gamma) - x_hat |   (L1, or squared with distill.loss = 'l2'),
averaged over the levels and the batch. `solvers.student_reading` turns the network's output
into x0 by level: as noise, like the teacher, where gamma >= 0.25 (so the student starts as the
teacher's one-step x0 prediction there); as x0 below; and with a zero input where gamma < 0.1,
where x_t is over 99% noise and the teacher's noise reading would amplify its errors up to 150
times. At a blind level the student cannot see which noise its teacher started from, so it learns
the mean (L2) or median (L1) of the teacher's outputs over that noise, whatever the teacher. At
the other levels on a deterministic path (eta 0) an exact student reproduces the teacher from
that point; with a stochastic teacher (DDIM, eta 1) x_hat is one draw among the outputs
reachable from x_t, and the L2 minimiser is their mean.

Reading the output as x0 at every level, with the noisy input, left chroma noise on flat images
(the student must unlearn the teacher's pass-through of its input); x0 + sigma * x_t lost PSNR,
since at the highest level the network must then cancel its input noise exactly
(docs/experiments.md).

Why this and not progressive or consistency distillation: the targets are the teacher's own
outputs, so one round of plain regression serves every number of student evaluations at every
scale, with no chain of rounds (progressive) and no bootstrapped target (consistency models),
which converge too slowly to measure on a CPU. The cost is the teacher's S evaluations per
example and step, spread over the four levels that each path teaches.
"""
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from idm_jax.config import diffusion as diffusion_config
from idm_jax.diffusion import consistency
from idm_jax.diffusion import objective
from idm_jax.diffusion import scan_loop
from idm_jax.diffusion import schedules
from idm_jax.diffusion import solvers

# net(lr, y_t, gamma, p) -> output (B, H, W, 3): the teacher's predicted noise; the student's,
# read by `solvers.student_reading`.
Net = Callable[[jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]


def student_levels(teacher_steps: int) -> tuple[int, ...]:
  """The teacher steps whose inputs the student learns from: those of the trailing 4-step grid,
  j * S / 4 (S = 20: steps 0, 5, 10, 15), so the first and last are at the sampler's two
  timesteps (`student_sampler.timesteps`); the two between are taught too: training at the
  sampler's two alone measured worse (README)."""
  if teacher_steps % 4:
    raise ValueError(f'distill.teacher_steps = {teacher_steps}: pass a multiple of 4 (the '
                     'student learns from the teacher steps of its 4-step grid).')
  return tuple(j * teacher_steps // 4 for j in range(4))


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
  gammas: np.ndarray  # (L,) their noise levels (static: the student's reading depends on them).
  final: jax.Array  # (B, H, W, 3): the teacher's output.


def teacher_targets(teacher: Net, lr: jax.Array, out_hw: tuple[int, int], p: jax.Array,
                    keys: jax.Array, table: solvers.StepTable, levels: tuple[int, ...], *,
                    projector: consistency.Projector | None, clip_x0: bool) -> Targets:
  """Runs the teacher from the noise of keys (B,), keeping its inputs at the `levels` steps.

  `teacher(lr, ...)` is called once per step; a model with `condition` / `denoise` is better
  wrapped so that it conditions once (see `distill_loss`).
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
  recip, recipm1, input_scale = map(per_row, solvers.student_reading(targets.gammas))
  x = inputs.reshape(levels * batch, *inputs.shape[2:])
  out = student(tile(lr), input_scale * x, jnp.repeat(jnp.asarray(targets.gammas, jnp.float32),
                                                      batch), tile(p)).astype(jnp.float32)
  return objective.pixel_loss(recip * x - recipm1 * out - tile(final), loss_type)


def distill_loss(student, teacher, lr: jax.Array, out_hw: tuple[int, int], p: jax.Array,
                 key: jax.Array, config: ml_collections.ConfigDict) -> jax.Array:
  """The loss of one batch: teacher and student are IDM networks (`condition` / `denoise`).

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
                            student_levels(d.teacher_steps),
                            projector=projector, clip_x0=bool(config.sampler.clip_x0))
  return student_loss(student, lr, p, targets, d.loss)
