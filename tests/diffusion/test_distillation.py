"""Distillation on stand-ins: the student's grid and sampler, the teacher's targets, the loss."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from idm_jax.config import diffusion as config
from idm_jax.config import experiment
from idm_jax.diffusion import consistency
from idm_jax.diffusion import distillation
from idm_jax.diffusion import sampling
from idm_jax.diffusion import schedules
from idm_jax.diffusion import solvers
from tests import float_rounding
from tests.diffusion import stand_in

T = 40
OUT_HW = (12, 16)  # Non-square, x3 and x4 of the 4x4 LR.


def _diffusion():
  d = config.default_diffusion_config()
  d.num_timesteps, d.linear_start, d.linear_end = T, 1e-4, 0.3
  return d


def _schedule():
  return schedules.make_schedule(_diffusion(), np.float64)


def _lr(batch=2, seed=1):
  return stand_in.uniform((batch, 4, 4, 3), seed)


P = jnp.array([0.5, 1.0])


def _config(loss, sampler='dpm_solver++', eta=0.0):
  """An experiment config: the test schedule, a 4-step teacher, students of 1, 2 and 4 steps."""
  c = experiment.default_config()
  c.diffusion = _diffusion()
  c.distill.loss, c.distill.teacher_sampler, c.distill.teacher_eta = loss, sampler, eta
  c.data.degradation = 'matlab_bicubic'
  c.distill.teacher_steps, c.distill.student_steps = 4, (1, 2, 4)
  return c


class X0StandIn(nnx.Module):
  """A student stand-in: its output is up(lr) + 0.3 * tanh(y) + gamma, each term known."""

  def __call__(self, lr, y, gamma, p):
    up = jax.image.resize(lr, (lr.shape[0], *y.shape[1:3], 3), 'nearest')
    return up + 0.3 * jnp.tanh(y) + gamma[:, None, None, None]

  def condition(self, lr, out_hw, p):
    return {'lr': lr, 'p': p}

  def denoise(self, cond, y, gamma):
    return self(cond['lr'], y, gamma, cond['p'])


def test_student_levels_are_the_nested_grids():
  assert distillation.student_levels(20, (1, 2, 4)) == (0, 5, 10, 15)
  assert distillation.student_levels(12, (1, 3)) == (0, 4, 8)
  assert distillation.student_levels(8, (2,)) == (0, 4)


@pytest.mark.parametrize('steps', [1, 2, 4])
def test_student_table_is_ddim_on_the_teacher_grid(steps):
  schedule = _schedule()
  table = solvers.distilled_table(schedule, steps)
  teacher = distillation.teacher_table(schedule, 'dpm_solver++', 20)
  # The student's levels are the teacher's at every (20 / k)-th step.
  np.testing.assert_allclose(table.gamma, teacher.gamma[::20 // steps], rtol=1e-6)
  abar = np.append(np.asarray(schedule.alphas_cumprod)[T - 1 - np.arange(steps) * T // steps], 1.0)
  g, s = np.sqrt(abar), np.sqrt(1 - abar)
  np.testing.assert_allclose(table.gamma, g[:-1], rtol=1e-6)
  np.testing.assert_allclose(table.a, s[1:] / s[:-1], rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(table.b, g[1:] - s[1:] / s[:-1] * g[:-1], rtol=1e-5, atol=1e-7)
  # The output is noise where gamma >= 0.25 (this schedule's levels: 0.035, 0.16, 0.46, 0.84),
  # x0 below; the first level (gamma < 0.1) sees a zero input.
  out, x = 0.3, 0.7
  noise_level = g[:-1] >= 0.25
  assert noise_level.tolist() == [False, False, True, True][::4 // steps][:steps]
  np.testing.assert_allclose(table.recip * x - table.recipm1 * out,
                             np.where(noise_level, (x - s[:-1] * out) / g[:-1], out), rtol=1e-5)
  np.testing.assert_array_equal(table.input_scale, np.arange(steps) > 0)
  assert table.noise[0] == 1 and (table.noise[1:] == 0).all() and (table.c == 0).all()


def test_student_reading_at_the_demo_schedules_levels():
  """Steps 0, 5, 10, 15 of 20 on the demo's schedule: blind x0, blind x0, noise, noise."""
  gamma = np.array([0.0066, 0.0596, 0.286, 0.732])
  recip, recipm1, input_scale = solvers.student_reading(gamma)
  np.testing.assert_array_equal(input_scale, [0, 0, 1, 1])
  out, x = 0.3, 0.7
  expected_x0 = [out, out, *((x - np.sqrt(1 - g**2) * out) / g for g in gamma[2:])]
  np.testing.assert_allclose(recip * x - recipm1 * out, expected_x0, rtol=1e-12)


def test_student_sampler_steps_by_closed_form():
  """Two student steps (gammas 0.035 and 0.46): x0_0 = f(0) (a blind step read as x0),
  x_1 = s1/s0 z + (g1 - s1/s0 g0) x0_0, result (x_1 - s1 f(x_1)) / g1 (read as noise)."""
  student, lr = X0StandIn(), _lr()
  sampler = config.default_sampler_config()
  sampler.name, sampler.steps, sampler.consistency, sampler.clip_x0 = 'distilled', 2, 'none', False
  sampler.trajectory_every = 1
  images, traj = sampling.sample(student, lr, OUT_HW, P, jax.random.key(0), sampler, _diffusion())
  abar = np.asarray(_schedule().alphas_cumprod)[[T - 1, T // 2 - 1]]
  g, s = np.sqrt(abar), np.sqrt(1 - abar)
  gamma = lambda i: jnp.full((2,), g[i], jnp.float32)
  x0_0 = student(lr, jnp.zeros_like(traj.x[0]), gamma(0), P)
  float_rounding.assert_equal_to_rounding(traj.x0[0], x0_0)
  float_rounding.assert_equal_to_rounding(
      traj.x[1], s[1] / s[0] * traj.x[0] + (g[1] - s[1] / s[0] * g[0]) * x0_0)
  float_rounding.assert_equal_to_rounding(
      images, (traj.x[1] - s[1] * student(lr, traj.x[1], gamma(1), P)) / g[1])
  assert float(jnp.std(traj.x[0])) == pytest.approx(1.0, abs=0.1)  # It starts from noise.


@pytest.mark.parametrize('name,eta', [('dpm_solver++', 0.0), ('ddim', 0.0), ('ddim', 1.0)])
def test_teacher_targets_are_points_of_the_teacher_path(name, eta):
  teacher, lr = stand_in.StandIn(), _lr()
  sampler = config.default_sampler_config()
  sampler.name, sampler.steps, sampler.spacing, sampler.eta = name, 8, 'trailing', eta
  sampler.consistency, sampler.trajectory_every = 'matlab_bicubic', 1
  keys = jax.random.split(jax.random.key(3), 2)
  images, traj = sampling.sample(teacher, lr, OUT_HW, P, keys, sampler, _diffusion())
  levels = distillation.student_levels(8, (1, 2, 4))
  table = distillation.teacher_table(_schedule(), name, 8, eta)
  targets = distillation.teacher_targets(
      teacher, lr, OUT_HW, P, keys, table, levels,
      projector=consistency.make_projector('matlab_bicubic', (4, 4), OUT_HW), clip_x0=True)
  float_rounding.assert_equal_to_rounding(targets.inputs, traj.x[np.array(levels)])
  float_rounding.assert_equal_to_rounding(targets.final, images)
  np.testing.assert_allclose(targets.gammas, table.gamma[np.array(levels)])


def _teacher_with_constant_x0():
  """StandIn with a zero kernel: every step predicts x0 = up(lr) - 0.1 p, whatever y is."""
  teacher = stand_in.StandIn()
  teacher.kernel[...] = jnp.zeros_like(teacher.kernel[...])
  return teacher


@pytest.mark.parametrize('loss,sampler,eta', [('l1', 'dpm_solver++', 0.0), ('l2', 'ddim', 1.0)])
def test_loss_against_closed_forms(loss, sampler, eta):
  """The teacher's output is known in closed form (even with fresh noise at every step), so the
  loss of students off it is too."""
  c = _config(loss, sampler, eta)
  lr = _lr()
  up = jax.image.resize(lr, (2, *OUT_HW, 3), 'nearest') - 0.1 * P[:, None, None, None]
  projector = consistency.make_projector('matlab_bicubic', (4, 4), OUT_HW)
  final = consistency.project(projector, jnp.clip(up, -1, 1), lr)

  class Offset(nnx.Module):
    """Read as x0: the teacher's output + offset(gamma); as noise where gamma >= 0.25."""

    def __init__(self, offset):
      self.offset = offset

    def __call__(self, lr, y, gamma, p):
      rows = jnp.tile(final, (y.shape[0] // final.shape[0], 1, 1, 1))  # Level-major batches.
      g = gamma[:, None, None, None]
      x0 = rows + self.offset(g)
      return jnp.where(g >= 0.25, (y - g * x0) / jnp.sqrt(1 - g**2), x0)

  key = jax.random.key(7)
  teacher = _teacher_with_constant_x0()
  exact = distillation.distill_loss(Offset(lambda g: 0 * g), teacher, lr, OUT_HW, P, key, c)
  assert float(exact) < 1e-6  # Rounding: x0 is recip * x - recipm1 * output.
  const = distillation.distill_loss(Offset(lambda g: 0.25 + 0 * g), teacher, lr, OUT_HW, P, key, c)
  assert float(const) == pytest.approx(0.25 if loss == 'l1' else 0.0625, rel=1e-5)
  # An offset of gamma: the loss is the mean of gamma (or gamma^2) over the student's levels.
  by_level = distillation.distill_loss(Offset(lambda g: g), teacher, lr, OUT_HW, P, key, c)
  levels = np.array(distillation.student_levels(c.distill.teacher_steps, c.distill.student_steps))
  gammas = distillation.teacher_table(_schedule(), sampler, 4, eta).gamma[levels]
  assert len(levels) == 4 and len(set(gammas.tolist())) == 4
  expected = gammas.mean() if loss == 'l1' else (gammas**2).mean()
  assert float(by_level) == pytest.approx(float(expected), rel=1e-5)

