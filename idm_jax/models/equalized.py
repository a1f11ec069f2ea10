"""StyleGAN2 building blocks with equalised learning rate (the official `style.py` layers).

Equalised layers store N(0, 1) weights and multiply them by 1/sqrt(fan_in) at every call, so
Adam sees every weight at the same scale. The official checkpoints store the unscaled weights.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from idm_jax.models.conv2d import conv2d

_LEAKY_SLOPE = 0.2
_LEAKY_GAIN = math.sqrt(2.0)


def fused_leaky_relu(x: jax.Array, bias: jax.Array) -> jax.Array:
  """`leaky_relu(x + bias, 0.2) * sqrt(2)`: StyleGAN2's fused bias activation (bias on C)."""
  return jax.nn.leaky_relu(x + bias.astype(x.dtype), _LEAKY_SLOPE) * _LEAKY_GAIN


class FusedBias(nnx.Module):
  """The learned per-channel bias of `FusedLeakyReLU`, followed by the scaled leaky ReLU."""

  def __init__(self, channels: int):
    self.bias = nnx.Param(jnp.zeros((channels,), jnp.float32))

  def __call__(self, x: jax.Array) -> jax.Array:
    return fused_leaky_relu(x, self.bias[...])


class EqualConv2d(nnx.Module):
  """Convolution whose N(0, 1) kernel is scaled by 1/sqrt(in * k * k) at call time."""

  def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
               padding: int = 0, use_bias: bool = True, rngs: nnx.Rngs):
    self.stride, self.padding = stride, padding
    self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
    self.kernel = nnx.Param(jax.random.normal(
        rngs.params(), (kernel_size, kernel_size, in_channels, out_channels), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((out_channels,), jnp.float32)) if use_bias else None

  def __call__(self, x: jax.Array) -> jax.Array:
    y = conv2d(x, self.kernel[...] * self.scale, self.stride, self.padding)
    if self.bias is not None:
      y = y + self.bias[...].astype(y.dtype)
    return y


class EqualLinear(nnx.Module):
  """Linear map whose N(0, 1) weight is scaled by 1/sqrt(in) at call time."""

  def __init__(self, in_features: int, out_features: int, *, bias_init: float = 0.0,
               rngs: nnx.Rngs):
    self.scale = 1.0 / math.sqrt(in_features)
    self.kernel = nnx.Param(jax.random.normal(rngs.params(), (in_features, out_features),
                                              jnp.float32))
    self.bias = nnx.Param(jnp.full((out_features,), bias_init, jnp.float32))

  def __call__(self, x: jax.Array) -> jax.Array:
    return x @ (self.kernel[...] * self.scale).astype(x.dtype) + self.bias[...].astype(x.dtype)


def blur(x: jax.Array, taps: tuple[int, ...] = (1, 3, 1)) -> jax.Array:
  """Depthwise FIR low-pass before a stride-2 conv (`UpFirDnSmooth`, pad 1 on every side).

  The official `StyleLayer` uses the (1, 3, 1) kernel with padding ((pad - 1) // 2, pad // 2)
  = (1, 1) for a 3x3 conv, so the blurred map keeps the input size. The 2-D kernel is the outer
  product of the taps with itself, normalised to sum 1, so it runs as two 1-D passes of shifted
  adds, many times faster than XLA:CPU's depthwise convolution (README, 'Benchmarks').
  """
  weights = np.asarray(taps, np.float32) / np.sum(taps)
  before = (len(taps) - 1) // 2
  for axis in (1, 2):
    size = x.shape[axis]
    padding = [(0, 0)] * x.ndim
    padding[axis] = (before, len(taps) - 1 - before)
    xp = jnp.pad(x, padding)
    x = sum(jax.lax.slice_in_dim(xp, i, i + size, axis=axis) * float(w)
            for i, w in enumerate(weights))
  return x


class StyleConv(nnx.Module):
  """The official `StyleLayer`: [blur], equalised conv, then fused-bias leaky ReLU or a bias.

  With `activate`, the conv has no bias of its own and the bias lives in the activation
  (`FusedLeakyReLU`); without, the conv carries the bias.
  """

  def __init__(self, in_channels: int, out_channels: int, *, downsample: bool = False,
               activate: bool = True, rngs: nnx.Rngs):
    self.downsample = downsample
    self.conv = EqualConv2d(in_channels, out_channels, 3, stride=2 if downsample else 1,
                            padding=1, use_bias=not activate, rngs=rngs)
    self.act = FusedBias(out_channels) if activate else None

  def __call__(self, x: jax.Array) -> jax.Array:
    if self.downsample:
      x = blur(x)
    x = self.conv(x)
    return self.act(x) if self.act is not None else x
