"""Learning-rate schedules, clipping and the EMA rule."""
import jax.numpy as jnp
import numpy as np
import pytest

from idm_jax.config import experiment as config_lib
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


@pytest.mark.parametrize('clip', [0.0, 1.0])
def test_clipping_scales_the_gradient_adam_sees(clip):
  # Adam's second step sees the first step's moments: with b2 = 0 its update is
  # -lr * m / (|g2| + eps), m = b1 m1 + (1 - b1) g2, so it depends on the norm of each gradient;
  # a gradient of norm 500 clipped to 1 gives another update than the raw one.
  tx, _ = optimizer.make_optimizer(_optim(learning_rate=1.0, grad_clip_norm=clip, b1=0.5,
                                          b2=0.0, eps=1.0), 10)
  params = {'w': jnp.zeros(2)}
  state = tx.init(params)
  big, small = {'w': jnp.array([300.0, 400.0])}, {'w': jnp.array([0.3, 0.4])}
  _, state = tx.update(big, state, params)
  updates, _ = tx.update(small, state, params)
  g1 = np.array([300.0, 400.0]) * (1 / 500 if clip else 1)  # Clipped to norm 1.
  g2 = np.array([0.3, 0.4])
  # optax's bias correction: m / (1 - b1^2), v / (1 - b2^2) = g2^2.
  m = (0.5 * 0.5 * g1 + 0.5 * g2) / (1 - 0.25)
  np.testing.assert_allclose(np.asarray(updates['w']), -m / (np.abs(g2) + 1.0), rtol=1e-5)


def test_ema_copies_until_start_then_averages():
  params, old = {'w': jnp.full(3, 2.0)}, {'w': jnp.zeros(3)}
  np.testing.assert_array_equal(ema.update(old, params, jnp.int32(4), 0.9, 5)['w'], 2.0)
  np.testing.assert_allclose(ema.update(old, params, jnp.int32(5), 0.9, 5)['w'], 0.2, rtol=1e-6)
