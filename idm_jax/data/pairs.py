"""LR/HR pairs from one image: crops, degradation, augmentation, value range."""
import numpy as np

from idm_jax.data import degradation as degradation_lib
from idm_jax.data import sources


class ImageTooSmallError(ValueError):
  """An image smaller than the crop, with padding disabled."""


def _fit(image: np.ndarray, h: int, w: int, pad: bool, name: str) -> np.ndarray:
  """`image` if at least (h, w); else mirror-padded at the bottom/right, or ImageTooSmallError."""
  dh, dw = max(h - image.shape[0], 0), max(w - image.shape[1], 0)
  if not dh and not dw:
    return image
  if not pad:
    raise ImageTooSmallError(f'{name} is {image.shape[0]}x{image.shape[1]}, smaller than {h}x{w}')
  return np.pad(image, ((0, dh), (0, dw), (0, 0)), mode='symmetric')


def _augment(images: list[np.ndarray], rng: np.random.Generator, hflip: bool, vflip: bool,
             rot90: bool) -> list[np.ndarray]:
  """The same random flips / rotation for every image of a pair."""
  if hflip and rng.random() < 0.5:
    images = [im[:, ::-1] for im in images]
  if vflip and rng.random() < 0.5:
    images = [im[::-1] for im in images]
  if rot90 and rng.random() < 0.5:
    images = [np.rot90(im) for im in images]
  return images


def _aligned(record: sources.Record, s: int, min_lr: int,
             pad_small: bool) -> tuple[np.ndarray, np.ndarray]:
  """(HR, official LR) with HR trimmed to s times the LR, both padded so the LR is >= min_lr."""
  lr = record.lr
  hr = _fit(record.hr, lr.shape[0] * s, lr.shape[1] * s, False, record.name)
  hr = hr[:lr.shape[0] * s, :lr.shape[1] * s]
  lr = _fit(lr, min_lr, min_lr, pad_small, record.name)
  return _fit(hr, lr.shape[0] * s, lr.shape[1] * s, True, record.name), lr


def _crop(hr: np.ndarray, lr: np.ndarray, y: int, x: int, size: int,
          s: int) -> tuple[np.ndarray, np.ndarray]:
  """The LR window at (y, x) of side `size` and the HR window s times larger over it."""
  return hr[y * s:(y + size) * s, x * s:(x + size) * s], lr[y:y + size, x:x + size]


def train_pair(record: sources.Record, rng: np.random.Generator, *, lr_size: int, hr_size: int,
               lr_scale: int, degradation: str, pad_small: bool, hflip: bool, vflip: bool,
               rot90: bool) -> tuple[np.ndarray, np.ndarray]:
  """A random aligned crop: (HR uint8 (hr_size, hr_size, 3), LR uint8 (lr_size, lr_size, 3)).

  With an official LR image (then hr_size = lr_size * lr_scale) the LR crop is cut from it;
  otherwise the LR is the degraded HR crop.
  """
  if record.lr is None:
    hr = _fit(record.hr, hr_size, hr_size, pad_small, record.name)
    y = rng.integers(hr.shape[0] - hr_size + 1)
    x = rng.integers(hr.shape[1] - hr_size + 1)
    hr_crop = np.ascontiguousarray(hr[y:y + hr_size, x:x + hr_size])
    lr_crop = degradation_lib.degrade(hr_crop, (lr_size, lr_size), degradation)
  else:
    hr, lr = _aligned(record, lr_scale, lr_size, pad_small)
    y = rng.integers(lr.shape[0] - lr_size + 1)
    x = rng.integers(lr.shape[1] - lr_size + 1)
    hr_crop, lr_crop = _crop(hr, lr, y, x, lr_size, lr_scale)
  hr_crop, lr_crop = _augment([hr_crop, lr_crop], rng, hflip, vflip, rot90)
  return hr_crop, lr_crop


def eval_pair(record: sources.Record, scale: float, *, crop_size: int, lr_scale: int,
              degradation: str, pad_small: bool) -> tuple[np.ndarray, np.ndarray]:
  """A fixed (HR uint8, LR uint8) pair at `scale`: the full image or its center crop.

  The HR is trimmed (bottom/right) to round(lr_side * scale), which is lr_side * scale exactly for
  integer scales. The official LR image is used when its scale is `scale`.
  """
  if record.lr is not None and lr_scale == scale:
    s = lr_scale
    size = crop_size // s
    hr, lr = _aligned(record, s, max(size, 1), pad_small)
    if size:
      hr, lr = _crop(hr, lr, (lr.shape[0] - size) // 2, (lr.shape[1] - size) // 2, size, s)
    return np.ascontiguousarray(hr), np.ascontiguousarray(lr)
  hr = record.hr
  if crop_size:
    hr = _fit(hr, crop_size, crop_size, pad_small, record.name)
    top, left = (hr.shape[0] - crop_size) // 2, (hr.shape[1] - crop_size) // 2
    hr = hr[top:top + crop_size, left:left + crop_size]
  lr_hw = (int(hr.shape[0] // scale), int(hr.shape[1] // scale))
  if min(lr_hw) < 1:
    raise ImageTooSmallError(f'{record.name} is too small for scale {scale}')
  hr = np.ascontiguousarray(hr[:round(lr_hw[0] * scale), :round(lr_hw[1] * scale)])
  return hr, degradation_lib.degrade(hr, lr_hw, degradation)
