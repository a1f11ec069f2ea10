"""MATLAB `imresize(..., 'bicubic')` with antialiasing, in numpy.

This is how the DIV2K LR images were made, and evaluation uses it to check LR consistency. Each
axis is resized by a sparse (out, in) weight matrix built from MATLAB's `contributions` rule:
output pixel x (1-based) maps to u = x / s + (1 - 1 / s) / 2 in the input; when shrinking
(s < 1) the cubic kernel (a = -0.5) is stretched by 1 / s and scaled by s (antialiasing); taps
outside the image are mirrored (edge pixel repeated) and each row is normalised to sum 1.
"""
import functools

import numpy as np
from scipy import sparse


def _cubic(x: np.ndarray) -> np.ndarray:
  """Keys' cubic convolution kernel with a = -0.5 (MATLAB's 'bicubic')."""
  ax = np.abs(x)
  ax2, ax3 = ax * ax, ax * ax * ax
  near = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
  far = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
  return near + far


@functools.lru_cache(maxsize=256)
def resize_matrix(in_len: int, out_len: int, scale: float,
                  dtype: str = 'float64') -> sparse.csr_array:
  """The sparse (out_len, in_len) matrix resizing one axis by `scale`, as MATLAB does."""
  x = np.arange(1, out_len + 1, dtype=np.float64)
  u = x / scale + 0.5 * (1 - 1 / scale)
  width = 4.0 / scale if scale < 1 else 4.0
  left = np.floor(u - width / 2)
  taps = int(np.ceil(width)) + 2
  idx = left[:, None] + np.arange(taps)[None, :]  # 1-based input positions.
  dist = u[:, None] - idx
  w = scale * _cubic(scale * dist) if scale < 1 else _cubic(dist)
  w /= w.sum(axis=1, keepdims=True)
  # Mirror out-of-range taps: ... 2 1 | 1 2 ... n | n n-1 ...
  period = 2 * in_len
  k = np.mod(idx.astype(np.int64) - 1, period)
  k = np.where(k < in_len, k, period - 1 - k)
  rows = np.repeat(np.arange(out_len), taps)
  mat = sparse.csr_array((w.ravel(), (rows, k.ravel())), shape=(out_len, in_len))
  mat.sum_duplicates()  # Mirrored taps that land on the same pixel add up.
  return mat.astype(dtype)


def _resize_axis(x: np.ndarray, mat: sparse.csr_array, axis: int) -> np.ndarray:
  """Applies `mat` along `axis`: one sparse-dense product over all other axes."""
  moved = np.ascontiguousarray(np.moveaxis(x, axis, 0))
  out = mat @ moved.reshape(moved.shape[0], -1)
  return np.moveaxis(out.reshape(mat.shape[0], *moved.shape[1:]), 0, axis)


def _round_uint8(x: np.ndarray) -> np.ndarray:
  """MATLAB's saturating cast to uint8: clip, then round half away from zero."""
  return np.floor(np.clip(x, 0, 255) + 0.5).astype(np.uint8)


def imresize(image: np.ndarray,
             scale: float | None = None,
             output_hw: tuple[int, int] | None = None) -> np.ndarray:
  """Bicubic resize with antialiasing, matching MATLAB's `imresize`.

  Args:
    image: (H, W), (H, W, C) or (N, H, W, C); uint8 or float.
    scale: factor for both axes; the output side is ceil(side * scale), as in MATLAB.
    output_hw: (h, w) output size instead of `scale`; each axis then uses its own ratio.

  Returns:
    The resized image. Float input gives the same float dtype, unclipped. uint8 input gives uint8,
    rounded after each axis as MATLAB does for integer images (axes with the smaller ratio
    first), which stays within 1/255 of MATLAB.
  """
  if (scale is None) == (output_hw is None):
    raise ValueError('imresize needs exactly one of `scale` and `output_hw`.')
  if image.ndim not in (2, 3, 4):
    raise ValueError(f'imresize expects (H, W), (H, W, C) or (N, H, W, C); got {image.shape}.')
  h_axis = 1 if image.ndim == 4 else 0
  in_hw = image.shape[h_axis:h_axis + 2]
  if scale is not None:
    if scale <= 0:
      raise ValueError(f'scale must be positive, got {scale}.')
    out_hw = tuple(int(np.ceil(n * scale)) for n in in_hw)
    scales = (float(scale), float(scale))
  else:
    out_hw = tuple(int(n) for n in output_hw)
    if min(out_hw) < 1:
      raise ValueError(f'output_hw must be positive, got {output_hw}.')
    scales = tuple(o / n for o, n in zip(out_hw, in_hw))

  is_uint8 = image.dtype == np.uint8
  if is_uint8:
    out = image.astype(np.float64)
  elif np.issubdtype(image.dtype, np.floating):
    out = image
  else:
    raise ValueError(f'imresize takes uint8 or float images, got {image.dtype}.')
  for axis in sorted((0, 1), key=lambda a: scales[a]):
    if out_hw[axis] == in_hw[axis] and scales[axis] == 1:
      continue
    mat = resize_matrix(in_hw[axis], out_hw[axis], scales[axis], out.dtype.name)
    out = _resize_axis(out, mat, h_axis + axis)
    if is_uint8:
      out = _round_uint8(out).astype(np.float64)
  return out.astype(np.uint8) if is_uint8 else np.ascontiguousarray(out)
