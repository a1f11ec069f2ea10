"""The distilled student on stand-ins: its grid and sampler, the teacher's targets, the loss."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from idm_jax.config import diffusion as config
from idm_jax.config import experiment
from idm_jax.diffusion import consistency
from idm_jax.diffusion import sampling
from idm_jax.diffusion import schedules
from idm_jax.diffusion import solvers
from idm_jax.diffusion import student
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
  """An experiment config: the test schedule, a 4-step teacher."""
  c = experiment.default_config()
  c.diffusion = _diffusion()
  c.distill.loss, c.distill.teacher_sampler, c.distill.teacher_eta = loss, sampler, eta
  c.data.degradation = 'matlab_bicubic'
  c.distill.teacher_steps = 4
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


def test_student_levels_are_the_4_step_grid_ending_where_the_sampler_refines():
  assert student.teacher_levels(20) == (0, 5, 10, 15)
  assert student.teacher_levels(4) == (0, 1, 2, 3)
  levels = student.teacher_levels(8)
  grid = solvers.timesteps(T, 8, 'trailing')  # 39, 34, ..., 9, 4.
  np.testing.assert_array_equal(grid[[levels[0], levels[-1]]], student.timesteps(T))
  np.testing.assert_array_equal(student.timesteps(T), [T - 1, T // 4 - 1])
  with pytest.raises(ValueError, match='multiple of 4'):
    student.teacher_levels(10)


@pytest.mark.parametrize('steps,angles', [(1, []), (2, [0]), (3, [0, np.pi]),
                                          (4, [0, 2 * np.pi / 3, 4 * np.pi / 3])])
def test_student_plan_by_closed_form(steps, angles):
  schedule = _schedule()
  plan = student.make_plan(schedule, steps)
  abar = np.cumprod(1 - np.linspace(1e-4, 0.3, T))[[T - 1, T // 4 - 1]]  # 'linear' betas.
  g, s = np.sqrt(abar), np.sqrt(1 - abar)
  np.testing.assert_allclose(plan.gamma, g, rtol=1e-6)
  # The teacher's grid passes both levels, where the student learns.
  teacher = student.teacher_table(schedule, 'ddim', 8, 1.0)
  np.testing.assert_allclose(plan.gamma, teacher.gamma[[0, 6]], rtol=1e-6)
  # Blind at gamma 0.035 (zero input, output read as x0), noise at 0.84: x0 = (x - s out) / g.
  out, x = 0.3, 0.7
  np.testing.assert_allclose(plan.recip * x - plan.recipm1 * out, [out, (x - s[1] * out) / g[1]],
                             rtol=1e-5)
  np.testing.assert_array_equal(plan.input_scale, [0, 1])
  np.testing.assert_allclose(plan.angles, angles, rtol=1e-6)
  with pytest.raises(ValueError, match='1 evaluation or more'):
    student.make_plan(schedule, 0)


def _student_sample(net, steps, keys, consistency='none', clip_x0=False, **fields):
  sampler = config.default_sampler_config()
  sampler.name, sampler.steps, sampler.consistency, sampler.clip_x0 = (
      'distilled', steps, consistency, clip_x0)
  sampler.update(fields)
  return sampling.sample(net, _lr(), OUT_HW, P, keys, sampler, _diffusion())


class NoiseBlindStandIn(X0StandIn):
  """A student stand-in that finds no noise where it reads noise (output 0 there): its x0 is
  then x_t / gamma, which shows the sampler's noise."""

  def __call__(self, lr, y, gamma, p):
    return jnp.where(gamma[:, None, None, None] >= 0.25, 0.0, super().__call__(lr, y, gamma, p))


def test_student_sampler_by_closed_form():
  """The blind estimate A = f(0) (read as x0); k - 1 readings (x_i - s f(x_i)) / g of
  x_i = g A + s z_i, averaged. With the noise read as none, each reading is A + s / g z_i: one
  shows z_1 ~ N(0, 1), two or three cancel theirs (an antithetic pair; a circle)."""
  lr, keys = _lr(), jax.random.split(jax.random.key(0), 2)
  g0, g = (float(v) for v in student.make_plan(_schedule(), 1).gamma)
  s = float(np.sqrt(1 - g**2))
  gamma = lambda v: jnp.full((2,), v, jnp.float32)
  net = X0StandIn()
  blind = net(lr, jnp.zeros((2, *OUT_HW, 3)), gamma(g0), P)
  float_rounding.assert_equal_to_rounding(_student_sample(net, 1, keys), blind)
  one = _student_sample(NoiseBlindStandIn(), 2, keys)
  z = (one - blind) * g / s
  assert abs(float(jnp.mean(z))) < 0.1 and float(jnp.std(z)) == pytest.approx(1.0, abs=0.1)
  for steps in (3, 4):
    float_rounding.assert_equal_to_rounding(_student_sample(NoiseBlindStandIn(), steps, keys),
                                            blind)
  # A student affine in its input: the mean of the readings is the reading of their mean, g A.
  class Affine(X0StandIn):

    def __call__(self, lr, y, gamma, p):
      return super().__call__(lr, jnp.zeros_like(y), gamma, p) + 0.2 * y

  reading = lambda x: (x - s * Affine()(lr, x, gamma(g), P)) / g
  for steps in (3, 4):
    float_rounding.assert_equal_to_rounding(_student_sample(Affine(), steps, keys),
                                            reading(g * blind))
  # Clipping and projection apply to the blind estimate (here past 1) and to every reading: with
  # the noise of the first reading known, s / g u = one - blind, the pair's mean in closed form.
  class Bright(NoiseBlindStandIn):

    def __call__(self, lr, y, gamma, p):
      out = super().__call__(lr, y, gamma, p)
      return out + jnp.where(gamma[:, None, None, None] < 0.25, 0.5, 0.0)

  projector = consistency.make_projector('matlab_bicubic', (4, 4), OUT_HW)
  fix = lambda x0: consistency.project(projector, jnp.clip(x0, -1, 1), lr)
  pair = _student_sample(Bright(), 3, keys, 'matlab_bicubic', True)
  a = fix(blind + 0.5)
  float_rounding.assert_equal_to_rounding(pair, 0.5 * (fix(a + one - blind) + fix(a - one + blind)))
  # mean_of with antithetic twins: the twin's noise is negated, so one reading each cancels.
  twins = _student_sample(NoiseBlindStandIn(), 2, keys, mean_of=2, antithetic=True)
  float_rounding.assert_equal_to_rounding(twins, blind)
  # Example b's image depends on keys[b] alone.
  other = _student_sample(X0StandIn(), 3, jnp.stack([keys[0], jax.random.key(9)]))
  mine = _student_sample(X0StandIn(), 3, keys)
  float_rounding.assert_equal_to_rounding(other[0], mine[0])
  assert float(jnp.abs(other[1] - mine[1]).max()) > 1e-3


def test_student_sampler_keeps_no_trajectory():
  sampler = config.default_sampler_config()
  sampler.name, sampler.steps, sampler.trajectory_every = 'distilled', 2, 1
  with pytest.raises(ValueError, match='keeps no trajectory'):
    sampling.sample(X0StandIn(), _lr(), OUT_HW, P, jax.random.key(0), sampler, _diffusion())


@pytest.mark.parametrize('name,eta', [('dpm_solver++', 0.0), ('ddim', 0.0), ('ddim', 1.0)])
def test_teacher_targets_are_points_of_the_teacher_path(name, eta):
  teacher, lr = stand_in.StandIn(), _lr()
  sampler = config.default_sampler_config()
  sampler.name, sampler.steps, sampler.spacing, sampler.eta = name, 8, 'trailing', eta
  sampler.consistency, sampler.trajectory_every = 'matlab_bicubic', 1
  keys = jax.random.split(jax.random.key(3), 2)
  images, traj = sampling.sample(teacher, lr, OUT_HW, P, keys, sampler, _diffusion())
  levels = student.teacher_levels(8)
  table = student.teacher_table(_schedule(), name, 8, eta)
  targets = student.teacher_targets(
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
  exact = student.distill_loss(Offset(lambda g: 0 * g), teacher, lr, OUT_HW, P, key, c)
  assert float(exact) < 1e-6  # Rounding: x0 is recip * x - recipm1 * output.
  const = student.distill_loss(Offset(lambda g: 0.25 + 0 * g), teacher, lr, OUT_HW, P, key, c)
  assert float(const) == pytest.approx(0.25 if loss == 'l1' else 0.0625, rel=1e-5)
  # An offset of gamma: the loss is the mean of gamma (or gamma^2) over the student's levels.
  by_level = student.distill_loss(Offset(lambda g: g), teacher, lr, OUT_HW, P, key, c)
  levels = np.array(student.teacher_levels(c.distill.teacher_steps))
  gammas = student.teacher_table(_schedule(), sampler, 4, eta).gamma[levels]
  assert len(levels) == 4 and len(set(gammas.tolist())) == 4
  expected = gammas.mean() if loss == 'l1' else (gammas**2).mean()
  assert float(by_level) == pytest.approx(float(expected), rel=1e-5)

