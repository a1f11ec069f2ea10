"""SR3 U-Net blocks: noise-level embedding, residual blocks, self-attention."""
import math

import jax
import jax.numpy as jnp
from flax import nnx

from idm_jax.models.layers import Conv, Dense, GroupNorm


def noise_level_encoding(gamma: jax.Array, dim: int) -> jax.Array:
  """WaveGrad's sinusoidal encoding of the continuous noise level. (B,) -> (B, dim)."""
  count = dim // 2
  step = jnp.arange(count, dtype=jnp.float32) / count
  enc = gamma.astype(jnp.float32)[:, None] * jnp.exp(-math.log(1e4) * step)[None, :]
  return jnp.concatenate([jnp.sin(enc), jnp.cos(enc)], axis=-1)


class NoiseLevelMLP(nnx.Module):
  """Encoding -> Linear(C, 4C) -> swish -> Linear(4C, C)."""

  def __init__(self, channels: int, *, rngs: nnx.Rngs):
    self.channels = channels
    self.fc1 = Dense(channels, channels * 4, rngs=rngs)
    self.fc2 = Dense(channels * 4, channels, rngs=rngs)

  def __call__(self, gamma: jax.Array, dtype: jnp.dtype = jnp.float32) -> jax.Array:
    """gamma (B,) -> (B, C) in `dtype` (the encoding itself is computed in float32)."""
    encoding = noise_level_encoding(gamma, self.channels).astype(dtype)
    return self.fc2(jax.nn.swish(self.fc1(encoding)))


class NormActConv(nnx.Module):
  """GroupNorm -> swish -> [dropout] -> 3x3 conv (the official `Block`).

  Dropout draws its masks from the `rngs` of the call (training passes its step's key), so the
  module holds parameters only.
  """

  def __init__(self, in_channels: int, out_channels: int, groups: int, dropout: float, *,
               rngs: nnx.Rngs):
    self.norm = GroupNorm(groups, in_channels)
    self.dropout = nnx.Dropout(dropout) if dropout > 0 else None
    self.conv = Conv(in_channels, out_channels, rngs=rngs)

  def __call__(self, x: jax.Array, rngs: nnx.Rngs | None = None) -> jax.Array:
    x = jax.nn.swish(self.norm(x))
    if self.dropout is not None:
      x = self.dropout(x, rngs=rngs)
    return self.conv(x)


class ResBlock(nnx.Module):
  """Two norm-act-conv blocks, the noise embedding added per channel in between, and a skip."""

  def __init__(self, in_channels: int, out_channels: int, emb_channels: int, groups: int,
               dropout: float, *, rngs: nnx.Rngs):
    self.noise_proj = Dense(emb_channels, out_channels, rngs=rngs)
    self.block1 = NormActConv(in_channels, out_channels, groups, 0.0, rngs=rngs)
    self.block2 = NormActConv(out_channels, out_channels, groups, dropout, rngs=rngs)
    self.skip = (Conv(in_channels, out_channels, 1, rngs=rngs)
                 if in_channels != out_channels else None)

  def __call__(self, x: jax.Array, emb: jax.Array, rngs: nnx.Rngs | None = None) -> jax.Array:
    h = self.block1(x)
    h = h + self.noise_proj(emb).astype(h.dtype)[:, None, None, :]
    h = self.block2(h, rngs)
    return h + (self.skip(x) if self.skip is not None else x)


class SelfAttention(nnx.Module):
  """One-head self-attention over all pixels, scaled by 1/sqrt(C), with a residual."""

  def __init__(self, channels: int, groups: int, *, rngs: nnx.Rngs):
    self.norm = GroupNorm(groups, channels)
    self.qkv = Conv(channels, channels * 3, 1, use_bias=False, rngs=rngs)
    self.out = Conv(channels, channels, 1, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    q, k, v = jnp.split(self.qkv(self.norm(x)).reshape(b, h * w, 3 * c), 3, axis=-1)
    logits = jnp.einsum('bqc,bkc->bqk', q, k).astype(jnp.float32) / math.sqrt(c)
    attn = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    out = jnp.einsum('bqk,bkc->bqc', attn, v).reshape(b, h, w, c)
    return self.out(out) + x


class ResAttnBlock(nnx.Module):
  """A residual block, followed by self-attention at the configured resolutions."""

  def __init__(self, in_channels: int, out_channels: int, emb_channels: int, groups: int,
               dropout: float, with_attn: bool, *, rngs: nnx.Rngs):
    self.res = ResBlock(in_channels, out_channels, emb_channels, groups, dropout, rngs=rngs)
    self.attn = SelfAttention(out_channels, groups, rngs=rngs) if with_attn else None

  def __call__(self, x: jax.Array, emb: jax.Array, rngs: nnx.Rngs | None = None) -> jax.Array:
    x = self.res(x, emb, rngs)
    return self.attn(x) if self.attn is not None else x
