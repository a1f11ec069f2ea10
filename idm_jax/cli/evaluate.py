"""`idm-jax evaluate`: a checkpoint's metrics on a config's validation set at many scales.

  idm-jax evaluate --config=configs/ffhq_16_128.py --checkpoint=runs/ffhq/checkpoints \\
      --scales=2,3,4,5.3,7,8,10,12 --num_samples=4 [--config.sampler.steps=50]

The evaluation that training's validation runs (`evaluation/evaluator.py`): the same images,
keys and metrics, so a checkpoint's numbers here equal those in its TensorBoard log. On several
hosts, run it on each with --coordinator_address, --num_processes and --process_id (or on a
cluster that jax detects); process 0 writes the results.
"""
from collections.abc import Sequence

import jax
from absl import flags

from idm_jax import paths
from idm_jax.cli import flag_groups
from idm_jax.evaluation import evaluator
from idm_jax.evaluation import report


INPUT_ERRORS = flag_groups.INPUT_ERRORS
LOGS_PROGRESS = False  # It prints its result; absl's INFO lines stay off.


def define_flags(fv: flags.FlagValues, argv: Sequence[str]) -> None:
  flag_groups.define_config(fv, argv)
  flag_groups.define_checkpoint(fv)
  flags.DEFINE_string('output', None, 'Results folder; default: eval/ beside the checkpoint.',
                      flag_values=fv)
  flags.DEFINE_list('scales', None, 'Scales, e.g. 2,3,4,5.3; default: eval.scales.',
                    flag_values=fv)
  flags.DEFINE_integer('num_samples', None, 'Samples per input (mean and spread); default: '
                       'eval.num_samples.', lower_bound=1, flag_values=fv)
  flags.DEFINE_integer('num_images', None, 'First images of the validation set; default: '
                       'eval.num_images.', lower_bound=1, flag_values=fv)
  flag_groups.define_sampler(fv)
  flag_groups.define_distributed(fv)


def _scales(values: list[str]) -> tuple[float, ...]:
  try:
    return tuple(float(s) for s in values)
  except ValueError:
    raise flag_groups.UsageError(f'--scales={",".join(values)}: give scales as 2,3,4.5') from None


def run(fv: flags.FlagValues, args: Sequence[str]) -> int:
  if args:
    raise flag_groups.UsageError(f'unexpected arguments {list(args)}; the inputs are the '
                                 "config's validation images.")
  if fv.scales is not None:
    fv.config.eval.scales = _scales(fv.scales)
  for field in ('num_samples', 'num_images'):
    if getattr(fv, field) is not None:
      fv.config.eval[field] = getattr(fv, field)
  config = flag_groups.config(fv)
  flag_groups.initialize_distributed(fv)
  checkpoint = paths.resolve(fv.checkpoint)
  output = paths.resolve(fv.output) if fv.output else checkpoint.parent / 'eval'
  result = evaluator.evaluate_checkpoint(config, checkpoint, use_ema=fv.params == 'ema')
  if jax.process_index() == 0:
    report.write(result, output)
  print(report.format_table(result.report))
  print(f'step {result.report["step"]} ({result.report["params"]} parameters), '
        f'{result.report["num_samples"]} sample(s) per input, {result.report["seconds"]:.1f}s; '
        f'wrote {output}/metrics.json, metrics.csv, comparison.png and images/')
  return 0
