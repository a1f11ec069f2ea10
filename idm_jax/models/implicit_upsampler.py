"""The implicit upsampling layer: a coordinate MLP queried at the next resolution's pixels.

Each output pixel centre reads its nearest latent vector and its offset from that latent's
centre (LIIF), so any output size works: non-integer ratios, non-square maps, odd sizes.
"""
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from idm_jax.models import pixel_grid
from idm_jax.models.equalized import FusedBias
from idm_jax.models.layers import Dense

_ACTIVATIONS = {'relu': jax.nn.relu, 'gelu': jax.nn.gelu, 'silu': jax.nn.silu}


def unfold3x3(x: jax.Array) -> jax.Array:
  """Each pixel's zero-padded 3x3 neighbourhood, channel-major as `F.unfold`. (B,h,w,C)->(..,9C)."""
  b, h, w, c = x.shape
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  patches = [xp[:, i:i + h, j:j + w] for i in range(3) for j in range(3)]
  return jnp.stack(patches, axis=-1).reshape(b, h, w, c * 9)


class ImplicitUpsampler(nnx.Module):
  """Mix decoder and LR features by the scale weights, then decode at the target pixels."""

  def __init__(self, channels: int, hidden: tuple[int, ...], activation: str = 'none', *,
               feat_unfold: bool = False, local_ensemble: bool = False,
               cell_decode: bool = False, rngs: nnx.Rngs):
    if activation != 'none' and activation not in _ACTIVATIONS:
      raise ValueError(f'model.implicit_activation={activation!r}: use one of '
                       f'{["none", *_ACTIVATIONS]}.')
    self.activation = activation
    self.feat_unfold, self.local_ensemble, self.cell_decode = (
        feat_unfold, local_ensemble, cell_decode)
    self.mix_bias = FusedBias(channels)
    self.feat_dim = channels * (9 if feat_unfold else 1)
    dims = (self.feat_dim + 2 + (2 if cell_decode else 0), *hidden, channels)
    self.mlp = nnx.List([Dense(a, b, rngs=rngs) for a, b in zip(dims[:-1], dims[1:])])

  def __call__(self, x: jax.Array, w1: jax.Array, shift_term: jax.Array,
               out_hw: tuple[int, int]) -> jax.Array:
    """x (B,h,w,C) decoder features -> (B,H,W,C) at `out_hw`."""
    feat = self.mix_bias(x * w1.astype(x.dtype)[:, None, None, :] + shift_term)
    if self.feat_unfold:
      feat = unfold3x3(feat)
    (_, h, w, _), (out_h, out_w) = feat.shape, out_hw
    first = self.mlp[0]
    kernel = first.kernel[...].astype(feat.dtype)
    # The first layer is affine, so the latent part is projected on the coarse grid and then
    # gathered: the same sum as projecting every gathered copy, at a fraction of the cost.
    projected = feat @ kernel[:self.feat_dim]
    k_row, k_col = kernel[self.feat_dim], kernel[self.feat_dim + 1]
    constant = first.bias[...].astype(feat.dtype)
    if self.cell_decode:
      # LIIF's cell size (2 / out) in latent units, the same for every query. Python floats
      # are weakly typed: the sum stays in the compute dtype.
      constant = (constant + float(np.float32(2 / out_h * h)) * kernel[self.feat_dim + 2]
                  + float(np.float32(2 / out_w * w)) * kernel[self.feat_dim + 3])

    shifts = (-1, 1) if self.local_ensemble else (0,)
    preds, areas = [], []
    for row_shift in shifts:
      for col_shift in shifts:
        rows = pixel_grid.implicit_axis_queries(out_h, h, row_shift)
        cols = pixel_grid.implicit_axis_queries(out_w, w, col_shift)
        # The offsets are float32 constants; in the compute dtype, so bfloat16 stays bfloat16.
        row_rel, col_rel = (jnp.asarray(q.rel, feat.dtype) for q in (rows, cols))
        latent = pixel_grid.take(pixel_grid.take(projected, rows.index, 1), cols.index, 2)
        hid = (latent
               + (row_rel[:, None, None] * k_row + col_rel[None, :, None] * k_col
                  + constant)[None])
        for layer in self.mlp[1:]:
          if self.activation != 'none':
            hid = _ACTIVATIONS[self.activation](hid)
          hid = layer(hid)
        preds.append(hid)
        areas.append(np.abs(rows.rel[:, None] * cols.rel[None, :]) + np.float32(1e-9))
    if len(preds) == 1:
      return preds[0]
    # LIIF weights each corner's prediction by the area of the diagonally opposite one.
    total = np.sum(areas, axis=0)
    return sum(pred * (area / total)[None, :, :, None].astype(pred.dtype)
               for pred, area in zip(preds, areas[::-1]))
