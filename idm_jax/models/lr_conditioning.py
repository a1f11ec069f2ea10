"""Scale-adaptive conditioning: LR features for every decoder level, mixed by scale weights.

A StyleGAN2-style conv chain reads the conditioning image x_con at HR size and halves it per
level; a `shift` conv turns each level's features into that level's channels. Two equalised
linear maps of the scale input p give per-channel weights (w1, w2), normalised so that
w1^2 + w2^2 = 1; the implicit upsampler then mixes `w1 * decoder + w2 * shift`.
"""
from typing import NamedTuple

import jax
from flax import nnx

from idm_jax.models.equalized import EqualConv2d, EqualLinear, StyleConv


class LevelConditioning(NamedTuple):
  """What one implicit upsampler needs from the LR branch (level l >= 1, coarse to fine)."""
  w1: jax.Array  # (B, C_l): weight of the decoder features.
  shift_term: jax.Array  # (B, h_l, w_l, C_l): w2 * shift, already weighted.


def normalise_scale_weights(s1: jax.Array, s2: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(s1, s2) / sqrt(s1^2 + s2^2 + 1e-8), the official `Norm2Scale`."""
  inv = jax.lax.rsqrt(s1 * s1 + s2 * s2 + 1e-8)
  return s1 * inv, s2 * inv


class LRConditioning(nnx.Module):
  """x_con (B,H,W,3) and p (B,) -> one `LevelConditioning` per U-Net level 1..L-1.

  Level 0 has no implicit upsampler after it, so the official network's level-0 shift and
  scale layers (computed there, never used) and its last down layer are not built here.
  """

  def __init__(self, inner_channel: int, level_channels: tuple[int, ...], *, rngs: nnx.Rngs):
    self.first = StyleConv(3, inner_channel, rngs=rngs)
    ins = (inner_channel,) + tuple(level_channels[:-1])  # Input channels of level l's layers.
    levels = range(1, len(level_channels))
    self.down = nnx.List([StyleConv(ins[l - 1], level_channels[l - 1], downsample=True,
                                    rngs=rngs) for l in levels])
    self.shift = nnx.List([EqualConv2d(ins[l], level_channels[l], 3, padding=1, rngs=rngs)
                           for l in levels])
    self.scale1 = nnx.List([EqualLinear(1, level_channels[l], bias_init=1.0, rngs=rngs)
                            for l in levels])
    self.scale2 = nnx.List([EqualLinear(1, level_channels[l], bias_init=1.0, rngs=rngs)
                            for l in levels])

  def __call__(self, x_con: jax.Array, p: jax.Array) -> tuple[LevelConditioning, ...]:
    feat = self.first(x_con)
    p = p.astype(x_con.dtype)[:, None]
    out = []
    for down, shift, scale1, scale2 in zip(self.down, self.shift, self.scale1, self.scale2):
      feat = down(feat)
      w1, w2 = normalise_scale_weights(scale1(p), scale2(p))
      out.append(LevelConditioning(w1=w1, shift_term=shift(feat) * w2[:, None, None, :]))
    return tuple(out)
