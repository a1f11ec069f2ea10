"""`idm-jax evaluate`: a checkpoint's metrics on a config's validation set at many scales.

  idm-jax evaluate --config configs/ffhq_16_128.py --checkpoint runs/ffhq/checkpoints \\
      --scales 2,3,4,5.3,7,8,10,12 --num-samples 4 [--config.sampler.steps=50]

The evaluation that training's validation runs (`evaluation/evaluator.py`): the same images,
keys and metrics, so a checkpoint's numbers here equal those in its TensorBoard log. On several
hosts, run it on each with --coordinator-address, --num-processes and --process-id (or on a
cluster that jax detects); process 0 writes the results.
"""
import argparse

import jax
import ml_collections

from idm_jax import distributed
from idm_jax import paths
from idm_jax.config import diffusion as diffusion_config
from idm_jax.config import loading
from idm_jax.evaluation import evaluator
from idm_jax.evaluation import report

CHECKPOINT_HELP = "Orbax checkpoint folder: a run's checkpoints/ or `idm-jax convert` output"
CONFIG_HELP = ('experiment config (path.py[:arg]), e.g. configs/ffhq_16_128.py; any field can '
               'be overridden with --config.FIELD=value')


def add_sampler_arguments(parser: argparse.ArgumentParser) -> None:
  """--sampler, --steps, --consistency and --params, shared with `idm-jax upscale`."""
  parser.add_argument('--sampler', choices=diffusion_config.SAMPLERS, help="default: the config's sampler.name")
  parser.add_argument('--steps', type=int, help="network evaluations; default: sampler.steps")
  parser.add_argument('--consistency', choices=diffusion_config.CONSISTENCY_METHODS,
                      help='make the output consistent with the input under this degradation '
                      "(none: off); default: the config's sampler.consistency, whose 'auto' is "
                      'the training data\'s data.degradation')
  parser.add_argument('--params', choices=('ema', 'raw'), default='ema',
                      help='restore the EMA parameters (default) or the raw ones')


def load_config(args: argparse.Namespace) -> ml_collections.ConfigDict:
  """The config file with its --config.FIELD overrides and the sampler flags, validated."""
  overrides = list(args.config_overrides)
  if args.sampler is not None:
    overrides.append(f'--config.sampler.name={args.sampler}')
  if args.steps is not None:
    if args.steps < 1:
      raise ValueError(f'--steps {args.steps}: pass at least 1.')
    overrides.append(f'--config.sampler.steps={args.steps}')
  if args.consistency is not None:
    overrides.append(f'--config.sampler.consistency={args.consistency}')
  return loading.load(args.config, overrides)


def _scales(text: str) -> tuple[float, ...]:
  try:
    return tuple(float(s) for s in text.split(','))
  except ValueError:
    raise argparse.ArgumentTypeError(f'{text!r}: give scales as 2,3,4.5') from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.description = __doc__
  parser.formatter_class = argparse.RawDescriptionHelpFormatter
  parser.add_argument('--config', required=True, help=CONFIG_HELP)
  parser.add_argument('--checkpoint', required=True, help=CHECKPOINT_HELP)
  parser.add_argument('--output', help='results folder; default: eval/ beside the checkpoint')
  parser.add_argument('--scales', type=_scales, help='e.g. 2,3,4,5.3; default: eval.scales')
  parser.add_argument('--num-samples', type=int,
                      help='samples per input (mean and spread); default: eval.num_samples')
  parser.add_argument('--num-images', type=int,
                      help='first images of the validation set; default: eval.num_images')
  add_sampler_arguments(parser)
  parser.add_argument('--coordinator-address', help='host:port of process 0 (multi-host)')
  parser.add_argument('--num-processes', type=int, help='processes in the job (multi-host)')
  parser.add_argument('--process-id', type=int, help='this process, 0 .. num_processes - 1')
  parser.add_argument('--distributed', choices=distributed.MODES, default='auto',
                      help='call jax.distributed.initialize(): auto = when a cluster or the '
                      'flags above say so')


def run(args: argparse.Namespace) -> int:
  config = load_config(args)
  for field, value in (('scales', args.scales), ('num_samples', args.num_samples),
                       ('num_images', args.num_images)):
    if value is not None:
      config.eval[field] = value
  loading.validate(config)
  distributed.initialize(args.coordinator_address, args.num_processes, args.process_id,
                         args.distributed)
  checkpoint = paths.resolve(args.checkpoint)
  output = paths.resolve(args.output) if args.output else checkpoint.parent / 'eval'
  result = evaluator.evaluate_checkpoint(config, checkpoint, use_ema=args.params == 'ema')
  if jax.process_index() == 0:
    report.write(result, output)
  print(report.format_table(result.report))
  print(f'step {result.report["step"]} ({result.report["params"]} parameters), '
        f'{result.report["num_samples"]} sample(s) per input, {result.report["seconds"]:.1f}s; '
        f'wrote {output}/metrics.json, metrics.csv, comparison.png and images/')
  return 0
