"""`idm-jax upscale`: super-resolve image files at any scale >= 1 (see `inference.upscaler`).

  idm-jax upscale photo.jpg scan.png --checkpoint=runs/faces/checkpoints \\
      --config=configs/ffhq_16_128.py --scale=3.5 --output=upscaled/

Writes `<output>/<stem>_x<scale>.png` (`<stem>_<W>x<H>.png` with --size; `_s<k>` added per
sample with --num_samples > 1). A bad input is reported on one line and skipped; the exit status
is 1 when any input failed.
"""
import sys
import time
from collections.abc import Sequence

import jax
import tqdm
from absl import flags

from idm_jax import paths
from idm_jax.cli import flag_groups
from idm_jax.data import image_io
from idm_jax.inference import sampler as inference_sampler
from idm_jax.inference import upscaler


INPUT_ERRORS = flag_groups.INPUT_ERRORS
LOGS_PROGRESS = False  # It prints its result; absl's INFO lines stay off.


def define_flags(fv: flags.FlagValues, argv: Sequence[str]) -> None:
  flag_groups.define_config(fv, argv, 'The config the checkpoint was trained with.')
  flag_groups.define_checkpoint(fv)
  flags.DEFINE_float('scale', None, 'Factor >= 1; each side becomes floor(scale * side + 0.5).',
                     flag_values=fv)
  flags.DEFINE_string('size', None, 'Exact output size WIDTHxHEIGHT, e.g. 640x480.',
                      flag_values=fv)
  flags.mark_flags_as_mutual_exclusive(['scale', 'size'], required=True, flag_values=fv)
  flags.DEFINE_string('output', 'upscaled', 'Folder for the PNGs.', flag_values=fv)
  flags.DEFINE_integer('seed', 0, 'Sample k of an input uses fold_in(key(seed), k), whatever the '
                       'other inputs.', flag_values=fv)
  flags.DEFINE_integer('num_samples', 1, 'Outputs per input.', lower_bound=1, flag_values=fv)
  flags.DEFINE_integer('tile_size', None, "Tile outputs with a side beyond this many pixels; 0: "
                       "never tile; default: the config's sampler.tile_size.", lower_bound=0,
                       flag_values=fv)
  flags.DEFINE_integer('max_pixels', None, 'Most output pixels one network call may see (the '
                       'samples of one input, whole or one tile each, times sampler.mean_of); '
                       "default: the square of the larger of --tile_size and the config's "
                       'sampler.tile_size (none if both are 0).',
                       lower_bound=1, flag_values=fv)
  flag_groups.define_sampler(fv)


def _size(text: str | None) -> tuple[int, int] | None:
  """'640x480' -> (640, 480), width first."""
  if text is None:
    return None
  try:
    width, height = (int(v) for v in text.lower().split('x'))
  except ValueError:
    raise flag_groups.UsageError(
        f'--size={text}: give the size as WIDTHxHEIGHT, e.g. 640x480') from None
  if width < 1 or height < 1:
    raise flag_groups.UsageError(f'--size={text}: width and height must be positive')
  return width, height


def _output_name(stem: str, fv: flags.FlagValues, size_wh: tuple[int, int] | None,
                 sample: int) -> str:
  size = f'x{fv.scale:g}' if size_wh is None else f'{size_wh[0]}x{size_wh[1]}'
  suffix = f'_s{sample}' if fv.num_samples > 1 else ''
  return f'{stem}_{size}{suffix}.png'


def run(fv: flags.FlagValues, inputs: Sequence[str]) -> int:
  if not inputs:
    raise flag_groups.UsageError('no input images: name png, jpg, webp or bmp files before or '
                                 'after the flags.')
  size_wh = _size(fv.size)
  if fv.scale is not None:
    upscaler.check_scale(fv.scale)  # Before loading the model: it fails every input alike.
  # Default: the square of the larger tile size; none at all (never tiling): no budget.
  max_pixels = fv.max_pixels or max(fv.config.sampler.tile_size, fv.tile_size or 0) ** 2 or None
  if fv.tile_size is not None:
    fv.config.sampler.tile_size = fv.tile_size
  config = flag_groups.config(fv)
  sampler, step = inference_sampler.Sampler.from_checkpoint(config, fv.checkpoint,
                                                            use_ema=fv.params == 'ema')
  output = paths.resolve(fv.output)
  print(f'checkpoint step {step} ({fv.params} parameters), {sampler.settings.name} with '
        f'{sampler.steps} steps, on {jax.local_devices()[0].platform}', file=sys.stderr)
  # Sample k's noise: the key that `sampling.sample` gives a batch of one from
  # fold_in(key(seed), k), so an output does not depend on the others.
  keys = [jax.random.split(jax.random.fold_in(jax.random.key(fv.seed), k), 1)[0]
          for k in range(fv.num_samples)]
  failed, written = 0, set()
  bar = tqdm.tqdm(inputs, unit='image', disable=None)
  for path in bar:
    try:
      name = paths.resolve(path).name
      bar.set_postfix_str(name)
      image = upscaler.read_input(path)
      in_hw = image.rgb.shape[:2]
      out_hw = upscaler.output_size(in_hw, scale=fv.scale, size_wh=size_wh)
      layout = upscaler.plan(in_hw, out_hw, sampler.settings, max_pixels)
      targets = [output / _output_name(paths.resolve(path).stem, fv, size_wh, k)
                 for k in range(fv.num_samples)]
      if written.intersection(targets):
        raise ValueError(f'{targets[0]} was written for an earlier input of the same name; '
                         'upscale this one in another call with another --output.')
      tiles = f', {layout.num_tiles} tiles' if layout else ''
      bar.set_postfix_str(f'{name} -> {out_hw[1]}x{out_hw[0]}{tiles}, {fv.num_samples} '
                          f'sample(s), {sampler.steps} steps')
      start = time.perf_counter()
      for target, result in zip(targets, upscaler.upscale(sampler, image, out_hw, layout, keys,
                                                          max_pixels)):
        written.add(image_io.save_png(target, result))
        tqdm.tqdm.write(f'{path} -> {target} ({out_hw[1]}x{out_hw[0]}, '
                        f'{time.perf_counter() - start:.1f}s)', file=sys.stdout)
    except (ValueError, OSError, jax.errors.JaxRuntimeError) as e:
      failed += 1
      reason = ' '.join(str(e).split())  # One line, whatever the exception's text holds.
      if 'RESOURCE_EXHAUSTED' in reason:
        reason = 'out of memory; pass a smaller --tile_size and --max_pixels.'
      tqdm.tqdm.write(f'idm-jax upscale: error: {path}: {reason}', file=sys.stderr)
  print(f'upscaled {len(inputs) - failed} of {len(inputs)} inputs into {output}',
        file=sys.stderr)
  return 1 if failed else 0
