"""Plain convolution, dense and GroupNorm layers with PyTorch's semantics.

Weights start from PyTorch's default fan-in uniform init. The official trainer re-initialises
them orthogonally, which costs a QR decomposition per layer (minutes for the face model on a
CPU) and matters only at step 0; loaded checkpoints overwrite either.
"""
import jax
import jax.numpy as jnp
from flax import nnx

from idm_jax.models.conv2d import conv2d

_FAN_IN_UNIFORM = nnx.initializers.variance_scaling(1 / 3, 'fan_in', 'uniform')


class Conv(nnx.Module):
  """k x k convolution, zero padding k // 2 (or explicit), optional stride; NHWC, HWIO kernel."""

  def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *,
               stride: int = 1, use_bias: bool = True, rngs: nnx.Rngs):
    self.stride, self.padding = stride, kernel_size // 2
    self.kernel = nnx.Param(_FAN_IN_UNIFORM(
        rngs.params(), (kernel_size, kernel_size, in_channels, out_channels), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((out_channels,), jnp.float32)) if use_bias else None

  def __call__(self, x: jax.Array) -> jax.Array:
    y = conv2d(x, self.kernel[...], self.stride, self.padding)
    if self.bias is not None:
      y = y + self.bias[...].astype(y.dtype)
    return y


class Dense(nnx.Module):
  """Affine map on the last axis."""

  def __init__(self, in_features: int, out_features: int, *, rngs: nnx.Rngs):
    self.kernel = nnx.Param(_FAN_IN_UNIFORM(rngs.params(), (in_features, out_features), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((out_features,), jnp.float32))

  def __call__(self, x: jax.Array) -> jax.Array:
    return x @ self.kernel[...].astype(x.dtype) + self.bias[...].astype(x.dtype)


class GroupNorm(nnx.Module):
  """PyTorch's `nn.GroupNorm` (eps 1e-5, biased variance), computed in float32."""

  def __init__(self, groups: int, channels: int):
    if channels % groups:
      raise ValueError(f'GroupNorm: {channels} channels do not split into {groups} groups; '
                       'choose model.norm_groups dividing every level\'s channel count.')
    self.groups = groups
    self.scale = nnx.Param(jnp.ones((channels,), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((channels,), jnp.float32))

  def __call__(self, x: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    size = c // self.groups

    def group_mean(v):
      # Sum over the pixels per channel first, then over each group's channels: XLA:CPU runs
      # this several times faster than one reduction over (H, W, C/G) of a 5-D view.
      per_group = v.sum(axis=(1, 2)).reshape(b, self.groups, size).sum(axis=-1) / (h * w * size)
      return jnp.repeat(per_group, size, axis=1)[:, None, None, :]

    x32 = x.astype(jnp.float32)
    centred = x32 - group_mean(x32)
    y = centred * jax.lax.rsqrt(group_mean(jnp.square(centred)) + 1e-5)
    return (y * self.scale[...] + self.bias[...]).astype(x.dtype)
