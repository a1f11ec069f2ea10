"""`idm-jax evaluate`: a checkpoint's metrics on a config's validation set at many scales.

  idm-jax evaluate --config configs/ffhq_16_128.py --checkpoint runs/ffhq/checkpoints \\
      --scales 2,3,4,5.3,7,8,10,12 --num-samples 4
"""
import argparse
import pathlib

import ml_collections

from idm_jax.cli.config_file import load_config
from idm_jax.diffusion import config as diffusion_config
from idm_jax.diffusion import consistency
from idm_jax.evaluation import evaluate as evaluate_lib

SAMPLERS = ('ddpm', 'ddim', 'dpm_solver++')
CHECKPOINT_HELP = "Orbax checkpoint folder: a run's checkpoints/ or `idm-jax convert` output"


def add_sampler_arguments(parser: argparse.ArgumentParser) -> None:
  """--sampler, --steps, --consistency and --params, shared with `idm-jax upscale`."""
  parser.add_argument('--sampler', choices=SAMPLERS, help="default: the config's sampler.name")
  parser.add_argument('--steps', type=int, help="network evaluations; default: sampler.steps")
  parser.add_argument('--consistency', choices=consistency.METHODS,
                      help='make the output consistent with the input under this degradation '
                      "(none: off); default: the config's sampler.consistency, whose 'auto' is "
                      'the training data\'s data.degradation')
  parser.add_argument('--params', choices=('ema', 'raw'), default='ema',
                      help='restore the EMA parameters (default) or the raw ones')


def sampler_config(config: ml_collections.ConfigDict,
                   args: argparse.Namespace) -> ml_collections.ConfigDict:
  """A copy of `config.sampler`, consistency resolved, with --sampler / --steps / --consistency."""
  sampler = diffusion_config.resolve_sampler(config)
  if args.consistency is not None:
    sampler.consistency = args.consistency
  if args.sampler is not None:
    sampler.name = args.sampler
  if args.steps is not None:
    if args.steps < 1:
      raise ValueError(f'--steps {args.steps}: pass at least 1.')
    sampler.steps = args.steps
  return sampler


def _scales(text: str) -> list[float]:
  try:
    return [float(s) for s in text.split(',')]
  except ValueError:
    raise argparse.ArgumentTypeError(f'{text!r}: give scales as 2,3,4.5') from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.description = __doc__
  parser.formatter_class = argparse.RawDescriptionHelpFormatter
  parser.add_argument('--config', required=True,
                      help='experiment config (path.py[:arg]), e.g. configs/ffhq_16_128.py')
  parser.add_argument('--checkpoint', required=True, help=CHECKPOINT_HELP)
  parser.add_argument('--output', help='results folder; default: eval/ beside the checkpoint')
  parser.add_argument('--scales', type=_scales, help='e.g. 2,3,4,5.3; default: eval.scales')
  parser.add_argument('--num-samples', type=int,
                      help='samples per input (mean and spread); default: eval.num_samples, or 1')
  parser.add_argument('--per-device-batch', type=int, default=evaluate_lib.PER_DEVICE_BATCH,
                      help='requests per device in one sampling call')
  add_sampler_arguments(parser)


def run(args: argparse.Namespace) -> int:
  config = load_config(args.config)
  config.sampler = sampler_config(config, args)
  checkpoint = pathlib.Path(args.checkpoint)
  output = pathlib.Path(args.output) if args.output else checkpoint.absolute().parent / 'eval'
  results = evaluate_lib.evaluate(config, checkpoint, output, scales=args.scales,
                                  num_samples=args.num_samples, use_ema=args.params == 'ema',
                                  per_device_batch=args.per_device_batch)
  print(evaluate_lib.format_table(results))
  print(f'step {results["step"]} ({results["params"]} parameters), {results["num_samples"]} '
        f'sample(s) per input, {results["seconds"]:.1f}s; wrote {output}/metrics.json, '
        'metrics.csv and images/')
  return 0
