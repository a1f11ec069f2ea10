"""Learning-rate schedules, clipping and the EMA rule."""
import jax.numpy as jnp
import numpy as np
import pytest

from idm_jax.training import config as config_lib
from idm_jax.training import ema
from idm_jax.training import optimizer


def _optim(**fields):
  c = config_lib.default_config().optim
  c.update(fields)
  return c


def test_warmup_then_cosine_decay():
  schedule = optimizer.learning_rate_schedule(
      _optim(learning_rate=1e-3, warmup_steps=10, schedule='cosine', end_lr_fraction=0.1), 110)
  values = [float(schedule(s)) for s in (0, 5, 10, 60, 110)]
  np.testing.assert_allclose(values, [0.0, 5e-4, 1e-3, 5.5e-4, 1e-4], rtol=1e-5)


def test_constant_is_the_official_default():
  schedule = optimizer.learning_rate_schedule(_optim(), 1000)
  assert float(schedule(0)) == float(schedule(999)) == pytest.approx(1e-4)


def test_clipping_bounds_the_first_adam_step():
  tx, _ = optimizer.make_optimizer(_optim(learning_rate=1.0, grad_clip_norm=1e-3, b1=0.0,
                                          name='adamw', weight_decay=0.0), 10)
  params = {'w': jnp.zeros(4)}
  grads = {'w': jnp.array([3.0, 0.0, 0.0, 4.0])}
  updates, _ = tx.update(grads, tx.init(params), params)
  # Adam normalises the clipped gradient: the step keeps the sign, magnitude ~ the rate.
  np.testing.assert_allclose(np.asarray(updates['w'])[[0, 3]], [-1.0, -1.0], rtol=1e-2)


def test_ema_copies_until_start_then_averages():
  params, old = {'w': jnp.full(3, 2.0)}, {'w': jnp.zeros(3)}
  np.testing.assert_array_equal(ema.update(old, params, jnp.int32(4), 0.9, 5)['w'], 2.0)
  np.testing.assert_allclose(ema.update(old, params, jnp.int32(5), 0.9, 5)['w'], 0.2, rtol=1e-6)
