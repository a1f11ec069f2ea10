"""Tiled denoising: overlapping HR tiles, each conditioned on its own LR crop, blended every step.

Tile boundaries sit where HR and LR pixel edges coincide (multiples of H / gcd(H, h) HR pixels), so
a tile of th HR pixels is exactly the footprint of an LR crop of th * h / H pixels, and the tile's
own coordinate grid equals the global one there. Each step, the noise predicted on every tile is
weighted by a window that ramps (sin^2) over the overlap on interior edges, summed, and divided by
the sum of windows, so neighbouring predictions cross-fade and the next x_t has no seams. Tiles run
one after another in a `jax.lax.scan`, so network activations never exceed one tile's.
"""
import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np


@dataclasses.dataclass(frozen=True)
class TileLayout:
  """Where the tiles are; hashable, so it can be a static argument of `jax.jit`."""
  out_hw: tuple[int, int]
  tile_hw: tuple[int, int]  # HR pixels per tile.
  lr_tile_hw: tuple[int, int]  # LR pixels per tile.
  hr_starts: tuple[tuple[int, int], ...]  # (y, x) of each tile's top-left HR pixel.
  lr_starts: tuple[tuple[int, int], ...]  # (y, x) of each tile's top-left LR pixel.
  overlap: int  # Width of the blending ramps in HR pixels.

  @property
  def num_tiles(self) -> int:
    return len(self.hr_starts)


def _axis_starts(lr_size: int, out_size: int, tile_size: int, overlap: int,
                 multiple: int) -> tuple[list[int], list[int], int, int]:
  """Tile starts along one axis: (HR starts, LR starts, HR tile size, LR tile size)."""
  g = math.gcd(lr_size, out_size)
  hr_unit, lr_unit = out_size // g, lr_size // g  # The smallest aligned HR / LR spans.
  align = math.lcm(hr_unit, multiple)
  tile = max(align, tile_size // align * align)  # Grows past tile_size if alignment demands.
  if tile >= out_size:
    return [0], [0], out_size, lr_size
  max_stride = (tile - overlap) // hr_unit * hr_unit
  if tile < 2 * overlap or max_stride <= 0:
    raise ValueError(f'tiles of {tile} HR pixels (multiples of {align} at {lr_size} -> '
                     f'{out_size}) are too small for an overlap of {overlap}')
  units = (out_size - tile) // hr_unit
  n = 1 + -(-(out_size - tile) // max_stride)
  hr = [hr_unit * (k * units // (n - 1)) for k in range(n)]
  return hr, [s // hr_unit * lr_unit for s in hr], tile, tile // hr_unit * lr_unit


def plan_tiles(lr_hw: tuple[int, int], out_hw: tuple[int, int], tile_size: int, overlap: int,
               multiple: int = 1) -> TileLayout:
  """Covers out_hw with equal tiles sharing >= overlap HR pixels.

  Tile sides are the largest multiples of lcm(H / gcd(H, h), multiple) within tile_size (or that
  lcm, if larger); a side the tile would cover whole is one tile.
  """
  ys, lr_ys, th, lth = _axis_starts(lr_hw[0], out_hw[0], tile_size, overlap, multiple)
  xs, lr_xs, tw, ltw = _axis_starts(lr_hw[1], out_hw[1], tile_size, overlap, multiple)
  return TileLayout(
      out_hw=tuple(out_hw), tile_hw=(th, tw), lr_tile_hw=(lth, ltw),
      hr_starts=tuple((y, x) for y in ys for x in xs),
      lr_starts=tuple((y, x) for y in lr_ys for x in lr_xs), overlap=overlap)


def layout_for(lr_hw: tuple[int, int], out_hw: tuple[int, int],
               sampler: ml_collections.ConfigDict, tiled: bool | None = None) -> TileLayout | None:
  """The one tiling decision (None: untiled). Tiles when `tiled`; when it is None, when
  `sampler.tile_size` > 0 and a side of the output exceeds it (0: never)."""
  if tiled is None:
    tiled = bool(sampler.tile_size) and max(out_hw) > sampler.tile_size
  if not tiled:
    return None
  return plan_tiles(lr_hw, out_hw, sampler.tile_size, sampler.tile_overlap, sampler.tile_multiple)


def _ramp_1d(size: int, start: int, total: int, overlap: int) -> np.ndarray:
  """(size,) weights: sin^2 ramps over `overlap` pixels on edges interior to the image, else 1."""
  w = np.ones(size, np.float64)
  ramp = np.sin(0.5 * np.pi * (np.arange(min(overlap, size)) + 0.5) / overlap)**2
  if start > 0:
    w[:len(ramp)] = ramp
  if start + size < total:
    w[size - len(ramp):] = np.minimum(w[size - len(ramp):], ramp[::-1])
  return w


def windows(layout: TileLayout) -> tuple[np.ndarray, np.ndarray]:
  """Separable blending weights of every tile: (N, th) along y and (N, tw) along x, float32."""
  (th, tw), (h, w) = layout.tile_hw, layout.out_hw
  wy = np.stack([_ramp_1d(th, y, h, layout.overlap) for y, _ in layout.hr_starts])
  wx = np.stack([_ramp_1d(tw, x, w, layout.overlap) for _, x in layout.hr_starts])
  return wy.astype(np.float32), wx.astype(np.float32)


def _crop(x: jax.Array, start: jax.Array, hw: tuple[int, int]) -> jax.Array:
  """x[:, y:y+h, x:x+w] for a traced (y, x) start; x (B, H, W, C)."""
  return jax.lax.dynamic_slice(x, (0, start[0], start[1], 0), (x.shape[0], *hw, x.shape[3]))


def _blend(layout: TileLayout, tile_fn, tile_inputs: Any, batch: int, channels: int) -> jax.Array:
  """Sum over tiles of window * tile_fn(start, inputs) (B, th, tw, C), placed in (B, H, W, C)."""
  starts = jnp.asarray(layout.hr_starts, jnp.int32)

  def add_tile(acc, inputs):
    start, wy, wx, tile_input = inputs
    value = tile_fn(start, tile_input) * wy[None, :, None, None] * wx[None, None, :, None]
    index = (0, start[0], start[1], 0)
    return jax.lax.dynamic_update_slice(acc, _crop(acc, start, layout.tile_hw) + value, index), None

  acc = jnp.zeros((batch, *layout.out_hw, channels), jnp.float32)
  wy, wx = windows(layout)
  acc, _ = jax.lax.scan(add_tile, acc, (starts, jnp.asarray(wy), jnp.asarray(wx), tile_inputs))
  return acc


def tiled_eps_fn(model, lr: jax.Array, p: jax.Array, layout: TileLayout,
                 cache_condition: bool) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """The blended noise prediction eps(x (B, H, W, C), gamma (B,)) of the whole image.

  lr (B, h, w, 3), p (B,). With `cache_condition`, `model.condition` of every tile's LR crop is
  computed here, once, and kept (memory grows with the output); otherwise each tile recomputes
  it at every step, and memory beyond the image-sized state is that of one tile.
  """
  lr_starts = jnp.asarray(layout.lr_starts, jnp.int32)
  condition = lambda s: model.condition(_crop(lr, s, layout.lr_tile_hw), layout.tile_hw, p)
  conds = jax.lax.map(condition, lr_starts) if cache_condition else None
  norm = 1.0 / _blend(layout, lambda s, _: jnp.ones((1, *layout.tile_hw, 1)), None, 1, 1)

  def eps_fn(x, gamma):
    def tile_eps(start, inputs):
      lr_start, cond = inputs
      cond = condition(lr_start) if cond is None else cond
      return model.denoise(cond, _crop(x, start, layout.tile_hw), gamma).astype(jnp.float32)

    return _blend(layout, tile_eps, (lr_starts, conds), x.shape[0], x.shape[3]) * norm

  return eps_fn
