"""IDM: EDSR encoder + scale-adaptive LR conditioning + SR3 U-Net with implicit upsampling.

`condition` computes everything that does not depend on the noise level once per image;
`denoise` is the part a sampler calls at every step.
"""
import contextlib
import functools
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
from idm_jax.models.unet_layout import (ConvSpec, NormActConvSpec, Path, ResAttnSpec, Spec,
                                        UpsamplerSpec, unet_layout)

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
    chans = tuple(cfg.inner_channel * m for m in cfg.channel_multiplier)

    self.encoder = EDSREncoder(cfg.encoder_blocks, cfg.encoder_features, rngs=rngs)
    self.lr_conditioning = LRConditioning(cfg.inner_channel, chans, rngs=rngs)
    self.noise_mlp = NoiseLevelMLP(cfg.inner_channel, rngs=rngs)

    # The U-Net in its layout's order: the official construction order, which also fixes the
    # order of the init draws.
    layout = unet_layout(cfg)
    build = functools.partial(_build, cfg=cfg, rngs=rngs)
    self.conv_in = build(layout.conv_in)
    down_blocks, downsamplers = [], []
    for level in layout.down:
      down_blocks.append(nnx.List([build(spec) for spec in level.blocks]))
      if level.resample is not None:
        downsamplers.append(build(level.resample))
    self.down_blocks = nnx.List(down_blocks)
    self.downsamplers = nnx.List(downsamplers)
    self.mid = nnx.List([build(spec) for spec in layout.mid])
    up_blocks, upsamplers = [], []
    for level in layout.up:
      up_blocks.append(nnx.List([build(spec) for spec in level.blocks]))
      if level.resample is not None:
        upsamplers.append(build(level.resample))
    self.up_blocks = nnx.List(up_blocks)  # Coarsest level first.
    self.upsamplers = nnx.List(upsamplers)  # upsamplers[i] leaves level L-1-i.
    self.conv_out = build(layout.conv_out)

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

  def denoise(self, cond: Conditioning, y_t: jax.Array, gamma: jax.Array, *,
              rngs: nnx.Rngs | None = None) -> jax.Array:
    """Predicted noise (B,H,W,3) float32 for y_t (B,H,W,3) at noise level gamma (B,).

    In training mode (`model.train()`, dropout > 0) dropout draws its masks from `rngs`' dropout
    stream, which the caller passes with every call.
    """
    with self._precision():
      return self._denoise(cond, y_t, gamma, rngs)

  def _denoise(self, cond: Conditioning, y_t: jax.Array, gamma: jax.Array,
               rngs: nnx.Rngs | None) -> jax.Array:
    layout = unet_layout(self.config)
    emb = self.noise_mlp(gamma, self.dtype)
    x = self.conv_in(jnp.concatenate([cond.x_con, y_t.astype(self.dtype)], axis=-1))
    skips = [x]
    for level in layout.down:
      for spec in level.blocks:
        x = self._submodule(spec.path)(x, emb, rngs)
        skips.append(x)
      if level.resample is not None:
        x = self._submodule(level.resample.path)(x)
        skips.append(x)
    for spec in layout.mid:
      x = self._submodule(spec.path)(x, emb, rngs)
    for level in layout.up:
      for spec in level.blocks:
        x = self._submodule(spec.path)(jnp.concatenate([x, skips.pop()], axis=-1), emb, rngs)
      if level.resample is not None:
        lr = cond.levels[level.resample.level - 1]
        x = self._submodule(level.resample.path)(x, lr.w1, lr.shift_term, skips[-1].shape[1:3])
    return self.conv_out(x).astype(jnp.float32)

  def _submodule(self, path: Path) -> nnx.Module:
    """The module at a layout spec's path."""
    node = self
    for key in path:
      node = node[key] if isinstance(key, int) else getattr(node, key)
    return node

  def __call__(self, lr: jax.Array, y_t: jax.Array, gamma: jax.Array, p: jax.Array, *,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """The full forward: `denoise(condition(lr, y_t's size, p), y_t, gamma, rngs=rngs)`."""
    return self.denoise(self.condition(lr, y_t.shape[1:3], p), y_t, gamma, rngs=rngs)


def _build(spec: Spec, cfg: ml_collections.ConfigDict, rngs: nnx.Rngs) -> nnx.Module:
  """The module a U-Net layout spec describes."""
  match spec:
    case ConvSpec():
      return Conv(spec.in_channels, spec.out_channels, stride=spec.stride, rngs=rngs)
    case ResAttnSpec():
      return ResAttnBlock(spec.in_channels, spec.out_channels, cfg.inner_channel,
                          cfg.norm_groups, cfg.dropout, spec.with_attn, rngs=rngs)
    case UpsamplerSpec():
      return ImplicitUpsampler(
          spec.channels, tuple(cfg.implicit_hidden), cfg.implicit_activation,
          feat_unfold=cfg.feat_unfold, local_ensemble=cfg.local_ensemble,
          cell_decode=cfg.cell_decode, rngs=rngs)
    case NormActConvSpec():
      return NormActConv(spec.in_channels, spec.out_channels, cfg.norm_groups, 0.0, rngs=rngs)
  raise TypeError(f'not a U-Net layout spec: {spec!r}')


def count_params(model: nnx.Module) -> int:
  """Number of trainable scalars."""
  return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
