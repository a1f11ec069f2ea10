"""Distillation: the `config.distill` section, which turns training into distilling a teacher.

With `distill.teacher` set, the trainer initialises the network from the teacher checkpoint's EMA
weights and trains it to give, from the teacher's points at the levels of its trailing 4-step grid,
the end of the teacher's `teacher_steps`-step trajectory, and it is then sampled in any number of
evaluations (`sampler.steps`): `diffusion/student.py`.
Everything else (sharded step, checkpoints, resume, EMA, validation) is training's.
"""
import ml_collections

TEACHER_SAMPLERS = ('dpm_solver++', 'ddim')
LOSSES = ('l1', 'l2')
# The student learns at the levels of the trailing grid of this many steps; its sampler reads
# the first and the last.
STUDENT_GRID_STEPS = 4


def default_distill_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.teacher = ''  # Checkpoint directory of the teacher (a run's checkpoints/); '' = plain training.
  c.teacher_sampler = 'dpm_solver++'  # Its solver, on the trailing grid.
  # A multiple of STUDENT_GRID_STEPS: the student learns from its steps j * S / 4, the last at
  # the level where its sampler refines (t = T / 4 - 1).
  c.teacher_steps = 20
  # DDIM only. 0: the teacher's path is deterministic, and the student learns where it ends
  # (at its blind first levels, which do not see the starting noise: the mean over it).
  # 1: fresh noise at every teacher step; with the L2 loss the student learns the mean of the
  # teacher's outputs from each point, i.e. the mean of many samples in one (the posterior mean).
  c.teacher_eta = 0.0
  c.loss = 'l1'  # 'l1' | 'l2', on the student's x0 against the teacher's output.
  return c


def validate(config: ml_collections.ConfigDict) -> None:
  """The rules linking `distill` to the sampler; `config` is a whole experiment config."""
  d, sampler = config.distill, config.sampler
  if d.teacher_sampler not in TEACHER_SAMPLERS:
    raise ValueError(f'distill.teacher_sampler = {d.teacher_sampler!r}: choose one of '
                     f'{TEACHER_SAMPLERS} (a deterministic solver).')
  if d.loss not in LOSSES:
    raise ValueError(f'distill.loss = {d.loss!r}: choose one of {LOSSES}.')
  if not 0 <= d.teacher_eta <= 1 or (d.teacher_eta and d.teacher_sampler != 'ddim'):
    raise ValueError(f'distill.teacher_eta = {d.teacher_eta}: in [0, 1], and above 0 only with '
                     'distill.teacher_sampler = "ddim".')
  if not 1 <= d.teacher_steps <= config.diffusion.num_timesteps:
    raise ValueError(f'distill.teacher_steps = {d.teacher_steps} must be in [1, '
                     f'diffusion.num_timesteps = {config.diffusion.num_timesteps}].')
  if d.teacher and sampler.name != 'distilled':
    raise ValueError(f'distillation validates the student: set sampler.name = "distilled" '
                     f'(sampler.name is {sampler.name!r}).')
  if d.teacher:
    check_teacher_steps(d.teacher_steps)
    if sampler.steps < 1:
      raise ValueError(f'sampler.steps = {sampler.steps}: a distilled student takes 1 network '
                       'evaluation or more.')


def check_teacher_steps(teacher_steps: int) -> None:
  """The teacher must step on the student's grid: `teacher_steps` a multiple of its steps."""
  if teacher_steps % STUDENT_GRID_STEPS:
    raise ValueError(f'distill.teacher_steps = {teacher_steps}: pass a multiple of '
                     f'{STUDENT_GRID_STEPS}, so that the teacher steps at the levels of the '
                     "student's grid, the last at t = T / 4 - 1, where its sampler refines.")
