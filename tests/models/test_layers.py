"""GroupNorm and the blur against their PyTorch definitions, computed independently in numpy float64."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from idm_jax.models.equalized import blur
from idm_jax.models.layers import GroupNorm


def _torch_group_norm(x, groups, scale, bias, eps=1e-5):
  """`F.group_norm` on NHWC: biased variance over (H, W, channels of the group)."""
  b, h, w, c = x.shape
  xg = x.astype(np.float64).reshape(b, h, w, groups, c // groups)
  mean = xg.mean(axis=(1, 2, 4), keepdims=True)
  var = xg.var(axis=(1, 2, 4), keepdims=True)
  y = ((xg - mean) / np.sqrt(var + eps)).reshape(b, h, w, c)
  return y * scale + bias


@pytest.mark.parametrize('shape, groups', [((2, 8, 6, 16), 4), ((1, 5, 7, 32), 32),
                                           ((3, 4, 4, 8), 1)])
def test_group_norm_matches_pytorch_definition(shape, groups):
  rng = np.random.default_rng(0)
  # An offset and spread per channel, so a wrong grouping or mean shows.
  x = (3 + rng.standard_normal(shape) * rng.uniform(0.1, 4, shape[-1])).astype(np.float32)
  norm = GroupNorm(groups, shape[-1])
  scale = rng.standard_normal(shape[-1]).astype(np.float32)
  bias = rng.standard_normal(shape[-1]).astype(np.float32)
  norm.scale[...], norm.bias[...] = jnp.asarray(scale), jnp.asarray(bias)
  got = np.asarray(jax.jit(lambda v: norm(v))(x))
  np.testing.assert_allclose(got, _torch_group_norm(x, groups, scale, bias), atol=2e-5)


def test_group_norm_keeps_bfloat16_and_rejects_bad_groups():
  norm = GroupNorm(4, 8)
  assert norm(jnp.ones((1, 2, 2, 8), jnp.bfloat16)).dtype == jnp.bfloat16
  with pytest.raises(ValueError, match='do not split into 3 groups'):
    GroupNorm(3, 8)


def _reference_blur(x, taps):
  """Zero-padded 2-D correlation of every channel with outer(taps, taps) / sum, in float64."""
  k = np.outer(taps, taps).astype(np.float64)
  k /= k.sum()
  before = (len(taps) - 1) // 2
  after = len(taps) - 1 - before
  _, h, w, _ = x.shape
  xp = np.pad(x.astype(np.float64), ((0, 0), (before, after), (before, after), (0, 0)))
  return sum(xp[:, i:i + h, j:j + w] * k[i, j]
             for i in range(len(taps)) for j in range(len(taps)))


@pytest.mark.parametrize('shape, taps', [((2, 9, 14, 5), (1, 3, 1)),
                                         ((1, 6, 5, 3), (1, 4, 6, 4, 1)),
                                         ((1, 1, 2, 2), (1, 3, 1))])
def test_blur_matches_depthwise_correlation(shape, taps):
  x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
  got = jax.jit(lambda v: blur(v, taps))(x)
  assert got.shape == x.shape and got.dtype == jnp.float32
  np.testing.assert_allclose(got, _reference_blur(x, taps), rtol=1e-5, atol=1e-6)
  assert blur(jnp.asarray(x, jnp.bfloat16), taps).dtype == jnp.bfloat16
