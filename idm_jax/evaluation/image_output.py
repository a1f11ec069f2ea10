"""Writing model outputs as 8-bit PNGs, rounded exactly as the metrics quantize them."""
import os
import pathlib

import numpy as np
from PIL import Image

from idm_jax.evaluation import metrics


def to_uint8(image: np.ndarray) -> np.ndarray:
  """Float `(..., H, W, C)` in [-1, 1] (clipped) -> uint8, as `metrics` with `quantize=True`."""
  return metrics.to_uint8_range(image, quantize=True).astype(np.uint8)


def save_png(path: str | os.PathLike, image: np.ndarray) -> pathlib.Path:
  """Writes one image as PNG, creating the folder; returns the path.

  Args:
    path: the file to write.
    image: float `(H, W, 3)` in [-1, 1], or uint8 `(H, W)` (gray), `(H, W, 2)` (gray + alpha),
      `(H, W, 3)` (RGB) or `(H, W, 4)` (RGBA).
  """
  image = np.asarray(image)
  if np.issubdtype(image.dtype, np.floating):
    image = to_uint8(image)
  if image.dtype != np.uint8:
    raise TypeError(f'save_png takes float images in [-1, 1] or uint8, got {image.dtype}')
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(image).save(path)
  return path
