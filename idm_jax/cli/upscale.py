"""`idm-jax upscale`: super-resolve image files at any scale >= 1 (see `inference.upscaler`).

  idm-jax upscale photo.jpg scan.png --checkpoint runs/faces/checkpoints \\
      --config configs/ffhq_16_128.py --scale 3.5 --output upscaled/

Writes `<output>/<stem>_x<scale>.png` (`<stem>_<W>x<H>.png` with --size; `_s<k>` added per
sample with --num-samples > 1). A bad input is reported on one line and skipped; the exit status
is 1 when any input failed.
"""
import argparse
import sys
import time

import jax
import tqdm

from idm_jax import paths
from idm_jax.cli import evaluate as evaluate_cli
from idm_jax.data import image_io
from idm_jax.inference import sampler as inference_sampler
from idm_jax.inference import upscaler


def _size(text: str) -> tuple[int, int]:
  """'640x480' -> (640, 480), width first."""
  try:
    width, height = (int(v) for v in text.lower().split('x'))
  except ValueError:
    raise argparse.ArgumentTypeError(
        f'{text!r}: give the size as WIDTHxHEIGHT, e.g. 640x480') from None
  if width < 1 or height < 1:
    raise argparse.ArgumentTypeError(f'{text!r}: width and height must be positive')
  return width, height


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.description = __doc__
  parser.formatter_class = argparse.RawDescriptionHelpFormatter
  parser.add_argument('inputs', nargs='+', metavar='INPUT', help='png, jpg, webp or bmp files')
  parser.add_argument('--checkpoint', required=True, help=evaluate_cli.CHECKPOINT_HELP)
  parser.add_argument('--config', required=True,
                      help='the experiment config the checkpoint was trained with; '
                      + evaluate_cli.CONFIG_HELP)
  size = parser.add_mutually_exclusive_group(required=True)
  size.add_argument('--scale', type=float,
                    help='factor >= 1; each side becomes floor(scale * side + 0.5)')
  size.add_argument('--size', type=_size, metavar='WxH', help='exact output size, e.g. 640x480')
  parser.add_argument('--output', default='upscaled',
                      help='folder for the PNGs (default upscaled/)')
  parser.add_argument('--seed', type=int, default=0,
                      help='sample k of an input uses fold_in(key(seed), k), whatever the other '
                      'inputs')
  parser.add_argument('--num-samples', type=int, default=1, help='outputs per input')
  parser.add_argument('--tile-size', type=int,
                      help="tile outputs with a side beyond this many pixels; 0: never tile; "
                      "default: the config's sampler.tile_size")
  parser.add_argument('--max-pixels', type=int,
                      help='most output pixels one network call may see (the whole output or one '
                      "tile); default: the square of the larger of --tile-size and the config's "
                      'sampler.tile_size')
  evaluate_cli.add_sampler_arguments(parser)


def _output_name(stem: str, args: argparse.Namespace, sample: int) -> str:
  size = f'x{args.scale:g}' if args.scale is not None else f'{args.size[0]}x{args.size[1]}'
  suffix = f'_s{sample}' if args.num_samples > 1 else ''
  return f'{stem}_{size}{suffix}.png'


def run(args: argparse.Namespace) -> int:
  config = evaluate_cli.load_config(args)
  max_pixels = args.max_pixels
  if max_pixels is None:
    max_pixels = max(config.sampler.tile_size, args.tile_size or 0) ** 2
  if args.tile_size is not None:
    if args.tile_size < 0:
      raise ValueError(f'--tile-size {args.tile_size}: pass a positive size, or 0 to never tile.')
    config.sampler.tile_size = args.tile_size
  if max_pixels < 1:
    raise ValueError(f'--max-pixels {max_pixels}: pass a positive pixel count.')
  if args.scale is not None:
    upscaler.check_scale(args.scale)  # Before loading the model: it fails every input alike.
  if args.num_samples < 1:
    raise ValueError(f'--num-samples {args.num_samples}: pass at least 1.')
  sampler, step = inference_sampler.Sampler.from_checkpoint(config, args.checkpoint,
                                                            use_ema=args.params == 'ema')
  output = paths.resolve(args.output)
  print(f'checkpoint step {step} ({args.params} parameters), {sampler.settings.name} with '
        f'{sampler.steps} steps, on {jax.local_devices()[0].platform}', file=sys.stderr)
  keys = [jax.random.fold_in(jax.random.key(args.seed), k) for k in range(args.num_samples)]
  failed, written = 0, set()
  bar = tqdm.tqdm(args.inputs, unit='image', disable=None)
  for path in bar:
    try:
      name = paths.resolve(path).name
      bar.set_postfix_str(name)
      image = upscaler.read_input(path)
      in_hw = image.rgb.shape[:2]
      out_hw = upscaler.output_size(in_hw, scale=args.scale, size_wh=args.size)
      layout = upscaler.plan(in_hw, out_hw, sampler.settings, max_pixels)
      targets = [output / _output_name(paths.resolve(path).stem, args, k)
                 for k in range(args.num_samples)]
      if written.intersection(targets):
        raise ValueError(f'{targets[0]} was written for an earlier input of the same name; '
                         'upscale this one in another call with another --output.')
      tiles = f', {layout.num_tiles} tiles' if layout else ''
      bar.set_postfix_str(f'{name} -> {out_hw[1]}x{out_hw[0]}{tiles}, {args.num_samples} '
                          f'sample(s), {sampler.steps} steps')
      start = time.perf_counter()
      for target, result in zip(targets, upscaler.upscale(sampler, image, out_hw, keys,
                                                          max_pixels)):
        written.add(image_io.save_png(target, result))
        tqdm.tqdm.write(f'{path} -> {target} ({out_hw[1]}x{out_hw[0]}, '
                        f'{time.perf_counter() - start:.1f}s)', file=sys.stdout)
    except (ValueError, OSError, jax.errors.JaxRuntimeError) as e:
      failed += 1
      reason = ' '.join(str(e).split())  # One line, whatever the exception's text holds.
      if 'RESOURCE_EXHAUSTED' in reason:
        reason = 'out of memory; pass a smaller --tile-size and --max-pixels.'
      tqdm.tqdm.write(f'idm-jax upscale: error: {path}: {reason}', file=sys.stderr)
  print(f'upscaled {len(args.inputs) - failed} of {len(args.inputs)} inputs into {output}',
        file=sys.stderr)
  return 1 if failed else 0
