"""IDM: EDSR encoder + scale-adaptive LR conditioning + SR3 U-Net with implicit upsampling.

`condition` computes everything that does not depend on the noise level once per image;
`denoise` is the part a sampler calls at every step.
"""
import contextlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from idm_jax.config import model as model_config
from idm_jax.models.edsr import EDSREncoder
from idm_jax.models.implicit_upsampler import ImplicitUpsampler
from idm_jax.models.layers import Conv
from idm_jax.models.lr_conditioning import LevelConditioning, LRConditioning
from idm_jax.models.unet_blocks import NoiseLevelMLP, NormActConv, ResAttnBlock

# model.compute_dtype -> the dtype of activations.
_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


class Conditioning(NamedTuple):
  """Timestep-independent inputs of the denoiser, computed once per image."""
  x_con: jax.Array  # (B,H,W,3): the encoder's conditioning image.
  levels: tuple[LevelConditioning, ...]  # U-Net levels 1..L-1.


class IDM(nnx.Module):
  """The full network. Shapes are NHWC; images and x_t live in [-1, 1]."""

  def __init__(self, cfg: ml_collections.ConfigDict, *, rngs: nnx.Rngs):
    model_config.validate(cfg)
    self.config = ml_collections.FrozenConfigDict(cfg)  # Hashable: it is static graph data.
    self.dtype = _DTYPES[cfg.compute_dtype]
    inner, groups, dropout = cfg.inner_channel, cfg.norm_groups, cfg.dropout
    chans = tuple(inner * m for m in cfg.channel_multiplier)
    num_levels = len(chans)

    self.encoder = EDSREncoder(cfg.encoder_blocks, cfg.encoder_features, rngs=rngs)
    self.lr_conditioning = LRConditioning(inner, chans, rngs=rngs)
    self.noise_mlp = NoiseLevelMLP(inner, rngs=rngs)
    self.conv_in = Conv(6, inner, rngs=rngs)

    res, pre, skip_channels = cfg.image_size, inner, [inner]
    down_blocks, downsamplers = [], []
    for level in range(num_levels):
      blocks = []
      for _ in range(cfg.res_blocks):
        blocks.append(ResAttnBlock(pre, chans[level], inner, groups, dropout,
                                   res in cfg.attn_res, rngs=rngs))
        pre = chans[level]
        skip_channels.append(pre)
      down_blocks.append(nnx.List(blocks))
      if level < num_levels - 1:
        downsamplers.append(Conv(pre, pre, 3, stride=2, rngs=rngs))
        skip_channels.append(pre)
        res //= 2
    self.down_blocks = nnx.List(down_blocks)
    self.downsamplers = nnx.List(downsamplers)
    self.mid = nnx.List([ResAttnBlock(pre, pre, inner, groups, dropout, True, rngs=rngs),
                         ResAttnBlock(pre, pre, inner, groups, dropout, False, rngs=rngs)])

    up_blocks, upsamplers = [], []
    for level in reversed(range(num_levels)):
      blocks = []
      for _ in range(cfg.res_blocks + 1):
        blocks.append(ResAttnBlock(pre + skip_channels.pop(), chans[level], inner, groups,
                                   dropout, res in cfg.attn_res, rngs=rngs))
        pre = chans[level]
      up_blocks.append(nnx.List(blocks))
      if level > 0:
        upsamplers.append(ImplicitUpsampler(
            pre, tuple(cfg.implicit_hidden), cfg.implicit_activation,
            feat_unfold=cfg.feat_unfold, local_ensemble=cfg.local_ensemble,
            cell_decode=cfg.cell_decode, rngs=rngs))
        res *= 2
    self.up_blocks = nnx.List(up_blocks)  # Coarsest level first.
    self.upsamplers = nnx.List(upsamplers)  # upsamplers[i] leaves level L-1-i.
    self.conv_out = NormActConv(pre, 3, groups, 0.0, rngs=rngs)

  def _precision(self):
    """`model.matmul_precision` for the convolutions and matmuls traced inside; 'default'
    leaves JAX's setting (JAX_DEFAULT_MATMUL_PRECISION) in force."""
    if self.config.matmul_precision == 'default':
      return contextlib.nullcontext()
    return jax.default_matmul_precision(self.config.matmul_precision)

  def condition(self, lr: jax.Array, out_hw: tuple[int, int], p: jax.Array) -> Conditioning:
    """lr (B,h,w,3), static out_hw (H,W) >= (h,w), p (B,) -> the timestep-free inputs."""
    if out_hw[0] < lr.shape[1] or out_hw[1] < lr.shape[2]:
      raise ValueError(f'output size {tuple(out_hw)} is smaller than the LR input '
                       f'{lr.shape[1:3]}: IDM upsamples; ask for an output at least as large.')
    with self._precision():
      x_con = self.encoder(lr.astype(self.dtype), tuple(out_hw))
      return Conditioning(x_con=x_con, levels=self.lr_conditioning(x_con, p))

  def denoise(self, cond: Conditioning, y_t: jax.Array, gamma: jax.Array) -> jax.Array:
    """Predicted noise (B,H,W,3) float32 for y_t (B,H,W,3) at noise level gamma (B,)."""
    with self._precision():
      return self._denoise(cond, y_t, gamma)

  def _denoise(self, cond: Conditioning, y_t: jax.Array, gamma: jax.Array) -> jax.Array:
    emb = self.noise_mlp(gamma, self.dtype)
    x = self.conv_in(jnp.concatenate([cond.x_con, y_t.astype(self.dtype)], axis=-1))
    skips = [x]
    for level, blocks in enumerate(self.down_blocks):
      for block in blocks:
        x = block(x, emb)
        skips.append(x)
      if level < len(self.downsamplers):
        x = self.downsamplers[level](x)
        skips.append(x)
    for block in self.mid:
      x = block(x, emb)
    for i, blocks in enumerate(self.up_blocks):
      for block in blocks:
        x = block(jnp.concatenate([x, skips.pop()], axis=-1), emb)
      if i < len(self.upsamplers):
        level = cond.levels[len(self.upsamplers) - 1 - i]
        x = self.upsamplers[i](x, level.w1, level.shift_term, skips[-1].shape[1:3])
    return self.conv_out(x).astype(jnp.float32)

  def __call__(self, lr: jax.Array, y_t: jax.Array, gamma: jax.Array,
               p: jax.Array) -> jax.Array:
    """The full forward: `denoise(condition(lr, y_t's size, p), y_t, gamma)`."""
    return self.denoise(self.condition(lr, y_t.shape[1:3], p), y_t, gamma)


def count_params(model: nnx.Module) -> int:
  """Number of trainable scalars."""
  return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
