"""A small deterministic model with the IDM sampling API, and seeded test inputs."""
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def uniform(shape, seed: int = 0) -> jax.Array:
  """Seeded U(-1, 1) float32 (numpy: no PRNG kernel to compile for each new shape)."""
  return jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, shape), jnp.float32)


def normal(shape, seed: int = 0) -> jax.Array:
  """Seeded N(0, 1) float32."""
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


class StandIn(nnx.Module):
  """A near-oracle denoiser: x0 = nearest-upsampled LR, plus a local (3x3) linear perturbation.

  eps = (y - gamma * (up - 0.1 * (conv([y, up]) + p))) / sqrt(1 - gamma^2), so the implied
  x0 = up - 0.1 * (conv([y, up]) + p) stays bounded at every noise level, like a trained model's,
  depends on y, and every output pixel depends only on its 3x3 neighbourhood.
  """

  def __init__(self, seed: int = 0):
    self.kernel = nnx.Param(normal((3, 3, 6, 3), seed) / np.sqrt(54.0))  # HWIO.

  def condition(self, lr, out_hw, p):
    up = jax.image.resize(lr, (lr.shape[0], *out_hw, lr.shape[3]), 'nearest')
    return {'up': up, 'p': p}

  def denoise(self, cond, y, gamma):
    g = gamma[:, None, None, None]
    conv = jax.lax.conv_general_dilated(jnp.concatenate([y, cond['up']], axis=-1), self.kernel[...],
                                        (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    pert = conv + cond['p'][:, None, None, None]
    return (y - g * (cond['up'] - 0.1 * pert)) / jnp.sqrt(1.0 - g**2)

  def __call__(self, lr, y, gamma, p):
    return self.denoise(self.condition(lr, y.shape[1:3], p), y, gamma)
