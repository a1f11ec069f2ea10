"""Images in and out: decode any image to 8-bit RGB (grayscale, palette, alpha, 16-bit and
EXIF-rotated inputs), the model's [-1, 1] range and back, and PNG files.

Files are read and written through `idm_jax.paths`, so an image may live in a bucket."""
import io
import os

import numpy as np
from etils import epath
from PIL import Image
from PIL import ImageOps

from idm_jax import paths

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.webp', '.bmp')
# What PIL raises on a file that is not a decodable image.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


class UnreadableImageError(ValueError):
  """An image file (or record) that cannot be decoded."""


def to_rgb_uint8(array: np.ndarray) -> np.ndarray:
  """Converts a decoded image array to uint8 (H, W, 3).

  Accepts (H, W), (H, W, 1), (H, W, 2) (gray + alpha), (H, W, 3) and (H, W, 4) (RGBA); alpha is
  dropped, as PIL's convert('RGB') does. uint16 and other integers above 255 are 16-bit
  (x / 257, rounded), floats are in [0, 1], booleans are black and white.
  """
  a = np.asarray(array)
  if a.ndim == 3 and a.shape[-1] in (2, 4):
    a = a[..., :a.shape[-1] - 1]
  if a.ndim == 3 and a.shape[-1] == 1:
    a = a[..., 0]
  if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] != 3):
    raise UnreadableImageError(f'not an image array: shape {a.shape}')
  if a.dtype == np.bool_:
    a = a.astype(np.uint8) * 255
  elif np.issubdtype(a.dtype, np.floating):
    a = np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)
  elif a.dtype != np.uint8:
    if a.dtype == np.uint16 or a.max(initial=0) > 255:
      a = np.round(np.clip(a, 0, 65535) / 257.0).astype(np.uint8)
    else:
      a = np.clip(a, 0, 255).astype(np.uint8)
  if a.ndim == 2:
    a = np.repeat(a[..., None], 3, axis=-1)
  return np.ascontiguousarray(a)


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
  if img.mode == 'RGB':
    return np.asarray(img)
  if img.mode in ('P', 'PA'):
    img = img.convert('RGBA')  # Resolves the palette, including a transparent index.
  elif img.mode == '1':
    img = img.convert('L')
  elif img.mode in ('CMYK', 'YCbCr', 'LAB', 'HSV'):
    img = img.convert('RGB')
  return to_rgb_uint8(np.asarray(img))


def open_image(path: paths.PathLike) -> Image.Image:
  """The decoded file at `path` (local or a URI), read whole: nothing stays open."""
  img = Image.open(io.BytesIO(paths.resolve(path).read_bytes()))
  img.load()
  return img


def image_rgb(img: Image.Image) -> np.ndarray:
  """A decoded image, upright (EXIF orientation applied), as uint8 (H, W, 3)."""
  return _pil_to_rgb(ImageOps.exif_transpose(img))


def load_rgb(path: paths.PathLike) -> np.ndarray:
  """Reads an image file as uint8 (H, W, 3); raises UnreadableImageError naming the file."""
  try:
    with open_image(path) as img:
      return image_rgb(img)
  except DECODE_ERRORS as e:
    raise UnreadableImageError(f'cannot read image {os.fspath(path)!r}: {e}') from e


def has_equal_channels(image: np.ndarray) -> bool:
  """Gray content in RGB form: the three channels are equal at every pixel."""
  r, g, b = np.moveaxis(image, -1, 0)
  return bool(np.all(r == g) and np.all(g == b))


def to_gray(image: np.ndarray) -> np.ndarray:
  """The mean of the three channels, in each of them: the output for a gray input, whose
  sampled channels differ by a little noise that a viewer would see as colour."""
  return np.broadcast_to(image.mean(axis=-1, keepdims=True), image.shape)


def to_model_range(image: np.ndarray) -> np.ndarray:
  """8-bit levels (uint8, or floats on the 0..255 scale) -> float32 in [-1, 1]."""
  return np.asarray(image).astype(np.float32) / np.float32(127.5) - np.float32(1)


def from_model_range(image: np.ndarray, quantize: bool = True) -> np.ndarray:
  """Float images in [-1, 1] (clipped) -> float64 on the 0..255 scale, rounded to 8-bit levels
  with `quantize` (the values an 8-bit file holds)."""
  image = np.asarray(image)
  if not np.issubdtype(image.dtype, np.floating):
    raise TypeError(f'expected float images in [-1, 1], got {image.dtype}; convert 8-bit '
                    'images with to_model_range')
  image = (np.clip(image.astype(np.float64), -1.0, 1.0) + 1.0) * 127.5
  return np.round(image) if quantize else image


def to_uint8(image: np.ndarray) -> np.ndarray:
  """Float images in [-1, 1] -> uint8, as an 8-bit file stores them."""
  return from_model_range(image).astype(np.uint8)


def save_png(path: paths.PathLike, image: np.ndarray) -> epath.Path:
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
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format='PNG')
  path = paths.resolve(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(buffer.getvalue())
  return path
