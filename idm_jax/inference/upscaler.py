"""Super-resolving any image file: reading it, the output size, the memory budget, the output.

  * Inputs: whatever `image_io.load_rgb` reads (png, jpg, webp, bmp; grayscale, palette, 16-bit,
    EXIF-rotated). The network sees 8-bit RGB; 16-bit inputs are reduced to 8 bits first.
  * Gray inputs give gray outputs: the mean of the three output channels, before rounding to
    8 bits. An input is gray when its file has one band (written back as one band) or when every
    pixel's R, G and B are equal (written back as RGB): any colour in the sample is invented
    noise, which the mean removes.
  * Alpha: the network upscales the colour channels; the alpha channel is resized with MATLAB
    bicubic (`imresize`) to the output size and re-attached (RGBA or gray + alpha PNG).
  * Output size: `--scale s` gives floor(s * side + 0.5) per side (round half up), `--size WxH`
    exactly that. Every side must be at least the input's: IDM only upsamples. The network's
    scale input is the geometric mean of the two real side ratios (`output_scale`).
  * Memory: one network call sees at most `max_pixels` output pixels (counting the
    `sampler.mean_of` draws of each sample): the samples of an input are batched into calls
    that fit, and an output is tiled when a side exceeds `sampler.tile_size`
    (`tiling.layout_for`); an output or tile beyond the budget is refused with the fix, before
    any sampling. Without a budget (`max_pixels` None) an input's samples run in one call.
"""
import dataclasses
import math
from typing import Iterator, Sequence

import jax
import ml_collections
import numpy as np
from PIL import ImageOps

from idm_jax import paths
from idm_jax.data import image_io
from idm_jax.data import imresize as imresize_lib
from idm_jax.diffusion import tiling
from idm_jax.inference import batching
from idm_jax.inference import sampler as inference_sampler
from idm_jax.scale import output_scale, scale_to_p

_ALPHA_MODES = ('RGBA', 'LA', 'PA', 'RGBa', 'La')


@dataclasses.dataclass(frozen=True)
class InputImage:
  """A decoded input: what the network sees and what is put back around its output."""
  rgb: np.ndarray  # uint8 (h, w, 3).
  alpha: np.ndarray | None  # uint8 (h, w); None when the file has no transparency.
  single_band: bool  # A gray file: the output is written with one band too.

  @property
  def grayscale(self) -> bool:
    """Gray content: one band, or three equal channels at every pixel."""
    return self.single_band or image_io.has_equal_channels(self.rgb)


def read_input(path: paths.PathLike) -> InputImage:
  """Decodes an image file (local or a URI); FileNotFoundError / ValueError naming the fix when
  it cannot."""
  try:
    img = image_io.open_image(path)  # Read once: a bucket's object is fetched one time.
  except (FileNotFoundError, IsADirectoryError):
    raise FileNotFoundError('no such file; check the path.') from None
  except image_io.DECODE_ERRORS as e:
    raise ValueError(f'not a readable image ({e}); pass a PNG, JPEG, WebP or BMP image.') from e
  with img:
    try:
      rgb = image_io.image_rgb(img)
    except image_io.DECODE_ERRORS as e:
      raise ValueError(f'not a readable image ({e}); pass a PNG, JPEG, WebP or BMP '
                       'image.') from e
    single_band = img.getbands()[0] in ('1', 'L', 'I', 'F')
    alpha = None
    if img.mode in _ALPHA_MODES or (img.mode in ('P', 'L', 'RGB') and 'transparency' in img.info):
      alpha = np.asarray(ImageOps.exif_transpose(img).convert('RGBA').getchannel('A'))
  return InputImage(rgb, alpha, single_band)


def check_scale(scale: float) -> None:
  if not scale >= 1:
    raise ValueError(f'--scale {scale:g} is below 1; IDM only upsamples: pass --scale >= 1.')


def output_size(in_hw: tuple[int, int], *, scale: float | None = None,
                size_wh: tuple[int, int] | None = None) -> tuple[int, int]:
  """(H, W) of the output: round half up of `scale` * each side, or `size_wh` = (W, H)."""
  h, w = in_hw
  if (scale is None) == (size_wh is None):
    raise ValueError('give exactly one of --scale and --size.')
  if scale is not None:
    check_scale(scale)
    return math.floor(scale * h + 0.5), math.floor(scale * w + 0.5)
  out_w, out_h = size_wh
  if out_h < h or out_w < w:
    raise ValueError(f'--size {out_w}x{out_h} is smaller than the {w}x{h} input on a side; IDM '
                     f'only upsamples: pass a --size of at least {w}x{h}.')
  return out_h, out_w


def plan(in_hw: tuple[int, int], out_hw: tuple[int, int], sampler: ml_collections.ConfigDict,
         max_pixels: int | None) -> tiling.TileLayout | None:
  """The tiles of an output (None: untiled), as sampling will use them, checked against the
  budget of `max_pixels` (None: none): ValueError naming the fix when the call of one sample,
  which sees `sampler.mean_of` draws of the output or of one tile, would see more."""
  (out_h, out_w), tile_size, draws = out_hw, sampler.tile_size, sampler.mean_of
  try:
    layout = tiling.layout_for(in_hw, out_hw, sampler)
  except ValueError as e:
    raise ValueError(f'{e}; pass a larger --tile_size.') from e
  if max_pixels is None:
    return layout
  side = max(1, math.isqrt(max_pixels // draws))
  times = f' x {draws} draws (sampler.mean_of)' if draws > 1 else ''
  if layout is None:
    if out_h * out_w * draws > max_pixels:
      fix = (f'enable tiling with --tile_size={side}' if not tile_size else
             f'pass --tile_size={side} or less')
      raise ValueError(f'output {out_w}x{out_h} ({out_h * out_w} pixels{times}) exceeds the '
                       f'budget of {max_pixels} pixels per network call; {fix}, or raise '
                       '--max_pixels.')
    return None
  tile_h, tile_w = layout.tile_hw
  if tile_h * tile_w * draws > max_pixels:
    if max(layout.tile_hw) <= tile_size:
      fix = f'pass --tile_size={side} or less'
    else:
      units = [o // math.gcd(o, i) for o, i in zip(out_hw, in_hw)]
      fix = (f'tile edges must fall on input pixel edges, every {units[1]}x{units[0]} output '
             f'pixels for {in_hw[1]}x{in_hw[0]} -> {out_w}x{out_h}; choose a --scale or --size '
             'whose sides share more factors with the input (an integer --scale always tiles)')
    raise ValueError(f'tiles of {tile_w}x{tile_h} pixels{times} for the {out_w}x{out_h} output '
                     f'exceed the budget of {max_pixels} pixels per network call; {fix}, or '
                     'raise --max_pixels.')
  return layout


def upscale(sampler: inference_sampler.Sampler, image: InputImage, out_hw: tuple[int, int],
            layout: tiling.TileLayout | None, keys: Sequence[jax.Array],
            max_pixels: int | None) -> Iterator[np.ndarray]:
  """Yields one output per key, uint8 (H, W, C): C = 3 (RGB), 1 + alpha or 3 + alpha.

  `layout` as `plan` accepted it for `max_pixels`; the samples run in calls of as many as fit
  that budget (None: all in one call).
  """
  per_sample = math.prod(out_hw if layout is None else layout.tile_hw) * sampler.settings.mean_of
  per_call = len(keys) if max_pixels is None else max(1, max_pixels // per_sample)
  p = float(scale_to_p(output_scale(image.rgb.shape[:2], out_hw), sampler.model.config.max_scale))
  lr = image_io.to_model_range(image.rgb)
  requests = [batching.Request(lr, out_hw, p, key) for key in keys]
  alpha = None
  if image.alpha is not None:
    alpha = imresize_lib.imresize(image.alpha, output_hw=out_hw)
  for _, sr in sampler.run(requests, per_call):
    if image.grayscale:
      sr = image_io.to_gray(sr)
    out = image_io.to_uint8(sr)
    if image.single_band:
      out = out[..., :1]
    if alpha is not None:
      out = np.concatenate([out, alpha[..., None]], axis=-1)
    yield out[..., 0] if out.shape[-1] == 1 else out
