"""How the LR images of the datasets were made from their HR images, as images and as matrices.

Both degradations are separable and linear (before 8-bit rounding): the LR image is
R_h @ HR @ R_w^T per channel, with one (lr, hr) matrix per axis. `degrade` makes LR images;
`axis_matrix` gives those matrices, which the sampler's consistency projection inverts.
"""
import functools

import numpy as np
from PIL import Image

from idm_jax.config.data import DEGRADATIONS
from idm_jax.data import imresize as imresize_lib


def degrade(hr: np.ndarray, lr_hw: tuple[int, int], method: str) -> np.ndarray:
  """LR image uint8 (h, w, 3) from HR uint8 (H, W, 3), as the datasets' LR files were made."""
  if method == 'matlab_bicubic':
    return imresize_lib.imresize(hr, output_hw=lr_hw)
  if method == 'pil_bicubic':
    return np.asarray(Image.fromarray(hr).resize(lr_hw[::-1], Image.Resampling.BICUBIC))
  raise ValueError(f'Unknown degradation {method!r}: use one of {DEGRADATIONS}.')


def _pil_cubic(x: np.ndarray) -> np.ndarray:
  """Pillow's bicubic filter (a = -0.5, `Resample.c`)."""
  a = -0.5
  x = np.abs(x)
  near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
  far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
  return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def _pil_matrix(in_len: int, out_len: int) -> np.ndarray:
  """Pillow's `resize(..., BICUBIC)` along one axis (its `precompute_coeffs`): taps clamped to
  the image and renormalised, the kernel stretched by the scale when shrinking."""
  scale = in_len / out_len
  filter_scale = max(scale, 1.0)
  support = 2.0 * filter_scale
  mat = np.zeros((out_len, in_len), np.float64)
  for i in range(out_len):
    center = (i + 0.5) * scale
    lo = max(int(center - support + 0.5), 0)  # C's truncating casts, as Pillow has them.
    hi = min(int(center + support + 0.5), in_len)
    taps = np.arange(lo, hi)
    w = _pil_cubic((taps - center + 0.5) / filter_scale)
    mat[i, lo:hi] = w / w.sum() if w.sum() else w
  return mat


@functools.lru_cache(maxsize=64)
def axis_matrix(method: str, in_len: int, out_len: int) -> np.ndarray:
  """Dense float64 (out_len, in_len) matrix of `method` resizing one axis; identity if equal."""
  if in_len == out_len:
    return np.eye(in_len)
  if method == 'matlab_bicubic':
    return imresize_lib.resize_matrix(in_len, out_len, out_len / in_len).toarray()
  if method == 'pil_bicubic':
    return _pil_matrix(in_len, out_len)
  raise ValueError(f'Unknown degradation {method!r}: use one of {DEGRADATIONS}.')
