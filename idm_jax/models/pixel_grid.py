"""Static pixel-grid geometry: which source pixel each output pixel reads.

Every index here depends only on shapes, so it is computed once in numpy at trace time and
enters the compiled program as a constant. The arithmetic is float32, step for step as PyTorch
does it, because official checkpoints were trained with exactly these choices: an index that
differs at a rounding tie would change the output. `take` applies such an index.
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

_F32 = np.float32
# `coord_.clamp_(-1 + 1e-6, 1 - 1e-6)` in the official implicit layer.
_CLAMP = _F32(1 - 1e-6)


def legacy_nearest_indices(in_size: int, out_size: int) -> np.ndarray:
  """Source indices of PyTorch's legacy `F.interpolate(mode='nearest')` along one axis.

  PyTorch computes `scale = (float)in / out` and `src = min(floor(dst * scale), in - 1)`
  in float32; the EDSR encoder of the official code resizes its features this way.
  """
  scale = _F32(in_size) / _F32(out_size)
  src = np.floor(np.arange(out_size, dtype=_F32) * scale).astype(np.int64)
  return np.minimum(src, in_size - 1)


def pixel_centres(n: int) -> np.ndarray:
  """LIIF's `make_coord` along one axis: centres of n cells spanning [-1, 1], float32.

  Evaluated as the official `v0 + r + (2 * r) * arange(n).float()`: the Python-float terms
  are rounded to float32 before the tensor arithmetic.
  """
  r = 1.0 / n
  return (_F32(2 * r) * np.arange(n, dtype=_F32)) + _F32(-1 + r)


def grid_sample_nearest_indices(coords: np.ndarray, size: int) -> np.ndarray:
  """Index read by `grid_sample(mode='nearest', align_corners=False)` at normalised coords.

  PyTorch's CPU kernel un-normalises as `(c + 1) * (size / 2) - 0.5` in float32 and rounds
  half to even (`nearbyint`); `np.rint` rounds half to even as well.
  """
  x = (coords.astype(_F32) + _F32(1)) * _F32(size / 2) - _F32(0.5)
  return np.clip(np.rint(x), 0, size - 1).astype(np.int64)


class AxisQuery(NamedTuple):
  """Where the query points of one output axis read in the latent grid."""
  index: np.ndarray  # (n_out,) int: nearest latent cell.
  rel: np.ndarray  # (n_out,) float32: (query - latent centre) * n_latent.


def implicit_axis_queries(n_out: int, n_latent: int, shift: int) -> AxisQuery:
  """One axis of the LIIF query: nearest latent cell and relative coordinate.

  `shift` is the local-ensemble offset in {-1, 0, 1}: the query point is moved by that many
  latent half-cells (plus LIIF's 1e-6) before the lookup, while the relative coordinate is
  measured from the unmoved query point, as in LIIF.
  """
  coord = pixel_centres(n_out)
  moved = coord
  if shift:
    # `vx * rx + eps_shift` is Python-float arithmetic, rounded once when added to the tensor.
    moved = coord + _F32(shift * (2 / n_latent / 2) + 1e-6)
  moved = np.clip(moved, -_CLAMP, _CLAMP)
  index = grid_sample_nearest_indices(moved, n_latent)
  latent_centres = pixel_centres(n_latent)
  rel = (coord - latent_centres[index]) * _F32(n_latent)
  return AxisQuery(index=index, rel=rel.astype(_F32))


def take(x: jax.Array, index: np.ndarray, axis: int) -> jax.Array:
  """`x` indexed by the static `index` along `axis`.

  At an integer upsampling ratio the index is often 0,0,1,1,2,2,...: then each value is
  repeated in place, which gives the same values and whose gradient is a sum over the copies,
  not the scatter-add a gather's gradient becomes (slow on GPUs and TPUs).
  """
  n = x.shape[axis]
  ratio = index.size // n
  if index.size % n == 0 and np.array_equal(index, np.repeat(np.arange(n), ratio)):
    # Broadcast and merge axes: no gather, and a sum (not a scatter) in the gradient.
    wide = jnp.broadcast_to(jnp.expand_dims(x, axis + 1),
                            x.shape[:axis + 1] + (ratio,) + x.shape[axis + 1:])
    return wide.reshape(x.shape[:axis] + (index.size,) + x.shape[axis + 1:])
  return jnp.take(x, index, axis=axis, mode='clip')  # Indices are in range by construction.
