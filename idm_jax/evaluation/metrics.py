"""Image quality metrics for super-resolution: PSNR, SSIM, LR consistency.

Conventions (all functions):
  * Inputs are float images in [-1, 1] (the project's model and data range),
    channels last: `(H, W, C)` for one image or `(..., H, W, C)` for a batch.
    Values outside [-1, 1] are clipped. Convert 8-bit images with
    `image_io.to_model_range`.
  * `quantize=True` (default) rounds both images to 8-bit levels first, as
    basicsr and the official IDM code (`tensor2img`) do, i.e. the metrics of the
    PNGs one would save. `quantize=False` measures the clipped floats directly,
    as LIIF does.
  * PSNR and SSIM are computed on the [0, 255] scale (peak 255, SSIM constants
    K1 = 0.01, K2 = 0.03 for a data range of 255), in float64.
  * `crop_border` pixels are removed from every edge before measuring, as
    basicsr's `crop_border` and LIIF's `shave`. Both use crop = scale for
    integer scales (`crop_border_for_scale`); LIIF uses scale + 6 on DIV2K.
  * `y_channel=True` measures the luma of ITU-R BT.601 as MATLAB's `rgb2ycbcr`
    (basicsr, `rgb_to_y`). LIIF's Y PSNR (coefficients 65.738 / 256, ...) equals
    `psnr(..., y_channel=True, quantize=False)` to within 1e-5 dB.
  * One image gives a float; a batch gives an array of the batch shape.
"""

from collections.abc import Mapping, Sequence
import math

import numpy as np

from idm_jax.data import image_io

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966])
_SSIM_RADIUS = 5
_SSIM_SIGMA = 1.5
_SSIM_C1 = (0.01 * 255.0) ** 2
_SSIM_C2 = (0.03 * 255.0) ** 2


def rgb_to_y(images: np.ndarray) -> np.ndarray:
  """BT.601 luma of RGB images `(..., H, W, 3)` in [0, 255] -> `(..., H, W, 1)`.

  Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, in [16, 235], not rounded.
  """
  images = np.asarray(images, np.float64)
  if images.shape[-1] != 3:
    raise ValueError(f"Y channel needs 3 channels, got shape {images.shape}")
  return (16.0 + images @ _Y_WEIGHTS / 255.0)[..., None]


def crop_border_for_scale(scale: float) -> int:
  """The border crop for an upscaling factor: the scale, rounded up."""
  return math.ceil(scale)


def _prepare(pred, target, crop_border, y_channel, quantize):
  """Both images on the [0, 255] scale, cropped, optionally as Y."""
  pred, target = np.asarray(pred), np.asarray(target)
  if pred.shape != target.shape or pred.ndim < 3:
    raise ValueError(
        f"need two images (..., H, W, C) of one shape, got {pred.shape} and "
        f"{target.shape}")
  images = []
  for image in (pred, target):
    image = image_io.from_model_range(image, quantize)
    if crop_border:
      image = image[..., crop_border:-crop_border, crop_border:-crop_border, :]
    images.append(rgb_to_y(image) if y_channel else image)
  return images


def _scalar_or_array(values: np.ndarray):
  """A float for a 0-d result, the array otherwise."""
  return values[()]


def psnr(pred, target, *, crop_border: int = 0, y_channel: bool = False,
         quantize: bool = True):
  """Peak signal-to-noise ratio in dB (peak 255), inf for identical images.

  Args:
    pred: `(..., H, W, C)` floats in [-1, 1].
    target: the reference, same shape.
    crop_border: pixels removed from each edge first.
    y_channel: measure BT.601 luma instead of RGB.
    quantize: round both to 8-bit levels first (basicsr); False as LIIF.

  Returns:
    PSNR per image: a float, or an array of the batch shape `(...)`.
  """
  pred, target = _prepare(pred, target, crop_border, y_channel, quantize)
  mse = np.mean((pred - target) ** 2, axis=(-3, -2, -1))
  with np.errstate(divide="ignore"):
    return _scalar_or_array(10.0 * np.log10(255.0 ** 2 / mse))


def _gaussian_window() -> np.ndarray:
  """The normalised 1-D Gaussian (11 taps, sigma 1.5) of SSIM."""
  x = np.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=np.float64)
  window = np.exp(-x ** 2 / (2.0 * _SSIM_SIGMA ** 2))
  return window / window.sum()


def _filter_valid(images: np.ndarray, window: np.ndarray) -> np.ndarray:
  """Separable 'valid' filtering: `(..., H, W, C)` -> `(..., H-10, W-10, C)`."""
  taps = len(window)
  height, width = images.shape[-3], images.shape[-2]
  rows = sum(w * images[..., i:height - taps + 1 + i, :, :]
             for i, w in enumerate(window))
  return sum(w * rows[..., :, i:width - taps + 1 + i, :]
             for i, w in enumerate(window))


def ssim(pred, target, *, crop_border: int = 0, y_channel: bool = False,
         quantize: bool = True):
  """Structural similarity as basicsr's `calculate_ssim` (MATLAB-compatible).

  An 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03 on [0, 255];
  'valid' filtering (no padding: the SSIM map loses 5 pixels on each side),
  the map averaged per channel, then over channels.

  Args:
    pred: `(..., H, W, C)` floats in [-1, 1]; H, W >= 11 after cropping.
    target: the reference, same shape.
    crop_border: pixels removed from each edge first.
    y_channel: measure BT.601 luma instead of RGB.
    quantize: round both to 8-bit levels first (basicsr); False as LIIF.

  Returns:
    SSIM per image: a float, or an array of the batch shape `(...)`.
  """
  x, y = _prepare(pred, target, crop_border, y_channel, quantize)
  if min(x.shape[-3:-1]) < 2 * _SSIM_RADIUS + 1:
    raise ValueError(
        f"SSIM needs images of at least 11x11 after cropping, got {x.shape}")
  window = _gaussian_window()
  mu_x, mu_y = _filter_valid(x, window), _filter_valid(y, window)
  var_x = _filter_valid(x * x, window) - mu_x ** 2
  var_y = _filter_valid(y * y, window) - mu_y ** 2
  cov = _filter_valid(x * y, window) - mu_x * mu_y
  ssim_map = ((2.0 * mu_x * mu_y + _SSIM_C1) * (2.0 * cov + _SSIM_C2)) / (
      (mu_x ** 2 + mu_y ** 2 + _SSIM_C1) * (var_x + var_y + _SSIM_C2))
  return _scalar_or_array(np.mean(ssim_map, axis=(-3, -2, -1)))


def lr_consistency(sr, lr, *, quantize: bool = True):
  """LR consistency: MSE(bicubic_down(SR), LR) on [0, 1], in units of 1e-5.

  SR is downsampled to the LR size with MATLAB-style bicubic `imresize`
  (antialiased), the degradation of the benchmarks, as SR3 and IDM report it.

  Args:
    sr: `(..., H, W, C)` floats in [-1, 1], the super-resolved output.
    lr: `(..., h, w, C)` floats in [-1, 1], the low-resolution input.
    quantize: round both to 8-bit levels first; the downsampled SR is not.

  Returns:
    MSE x 1e5 per image: a float, or an array of the batch shape `(...)`.
  """
  # Imported here: metrics without LR consistency need no data code.
  from idm_jax.data.imresize import imresize  # pylint: disable=g-import-not-at-top

  sr = image_io.from_model_range(sr, quantize) / 255.0
  lr = image_io.from_model_range(lr, quantize) / 255.0
  if sr.shape[:-3] != lr.shape[:-3] or sr.shape[-1] != lr.shape[-1]:
    raise ValueError(f"SR {sr.shape} and LR {lr.shape} do not pair up")
  batch_shape, lr_hw = lr.shape[:-3], lr.shape[-3:-1]
  sr = sr.reshape((-1,) + sr.shape[-3:])
  lr = lr.reshape((-1,) + lr.shape[-3:])
  mse = np.array([
      np.mean((np.asarray(imresize(s, output_hw=lr_hw), np.float64) - l) ** 2)
      for s, l in zip(sr, lr)
  ])
  return _scalar_or_array(mse.reshape(batch_shape) * 1e5)


def image_metrics(sr, hr, lr=None, *, crop_border: int = 0,
                  quantize: bool = True) -> dict[str, float]:
  """All metrics of one image `(H, W, 3)` in [-1, 1]: a flat dict of floats.

  Keys: `psnr`, `ssim` (RGB), `psnr_y`, `ssim_y` (BT.601 luma), all with
  `crop_border`; `lr_consistency` (x 1e-5, no crop) when `lr` is given.
  """
  metrics = {}
  for suffix, y_channel in (("", False), ("_y", True)):
    kwargs = dict(crop_border=crop_border, y_channel=y_channel,
                  quantize=quantize)
    metrics["psnr" + suffix] = float(psnr(sr, hr, **kwargs))
    metrics["ssim" + suffix] = float(ssim(sr, hr, **kwargs))
  if lr is not None:
    metrics["lr_consistency"] = float(lr_consistency(sr, lr, quantize=quantize))
  return metrics


def summarize(records: Sequence[Mapping[str, float]]) -> dict[str, float]:
  """Mean and spread of metric dicts, e.g. over samples of one input.

  Args:
    records: dicts with the same keys (as `image_metrics` returns), one per
      sample (or per image, for dataset means).

  Returns:
    `{key + "_mean": mean, key + "_std": std}` per key; the population standard
    deviation (ddof 0, so 0 for a single record).
  """
  if not records:
    raise ValueError("nothing to summarize")
  keys = list(records[0])
  if any(set(r) != set(keys) for r in records):
    raise ValueError("metric records have different keys")
  summary = {}
  for key in keys:
    values = np.array([r[key] for r in records], np.float64)
    summary[key + "_mean"] = float(np.mean(values))
    summary[key + "_std"] = float(np.std(values))
  return summary
