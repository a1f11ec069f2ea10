r"""Trains or evaluates IDM from an ml_collections config file.

  python -m idm_jax.main --config=configs/demo.py --workdir=DIR [--mode=train|eval] \
      [--config.train.batch_size=64 ...]

The same program as `idm-jax train` (and `idm-jax distill`, which names the teacher with
--teacher). Every config field can be overridden on the command line. An unknown field or a
value of the wrong type stops the program before anything starts, naming the field. Running the
same command again resumes from the newest checkpoint in DIR/checkpoints.
"""
import sys
from collections.abc import Sequence

import jax
import ml_collections
from absl import flags
from absl import logging

from idm_jax import paths
from idm_jax.cli import flag_groups


# Past the flags and the config, an error is the run's: it keeps its traceback.
INPUT_ERRORS = ()
LOGS_PROGRESS = True


def define_flags(fv: flags.FlagValues, argv: Sequence[str]) -> None:
  flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and results that every '
                      'host can reach: a local (shared) folder or gs://BUCKET/DIR (Orbax writes '
                      'checkpoints to no other object store).', flag_values=fv, required=True)
  flags.DEFINE_enum('mode', 'train', ['train', 'eval'],
                    'train: train (and validate); eval: evaluate WORKDIR/checkpoints.',
                    flag_values=fv)
  flags.DEFINE_string('teacher', None, 'Distil this checkpoint folder (a run\'s checkpoints/) '
                      'into a few-step student: sets config.distill.teacher.', flag_values=fv)
  flag_groups.define_config(fv, argv)
  flag_groups.define_distributed(fv)


def experiment_config(fv: flags.FlagValues) -> ml_collections.ConfigDict:
  """The config with its overrides and --teacher applied, validated."""
  if fv.teacher is not None:
    fv.config.distill.teacher = fv.teacher
  return flag_groups.config(fv)


def run(fv: flags.FlagValues, args: Sequence[str]) -> int:
  if args:
    raise flag_groups.UsageError(f'unexpected arguments {list(args)}: every setting is a flag '
                                 'or a --config.FIELD=value override.')
  config = experiment_config(fv)
  try:  # A storage Orbax cannot write (or read) stops here.
    workdir = paths.checkpoint_dir(fv.workdir)
    if config.distill.teacher:
      paths.checkpoint_dir(config.distill.teacher)
  except ValueError as e:
    raise flag_groups.UsageError(str(e)) from None
  flag_groups.initialize_distributed(fv)
  logging.info('JAX process %d / %d; local devices: %s', jax.process_index(),
               jax.process_count(), jax.local_devices())

  # Imported only now, so flag and config errors come before the model and the data load.
  if fv.mode == 'train':
    from idm_jax.training import train  # pylint: disable=g-import-not-at-top
    train.train_and_evaluate(config, workdir)
  else:
    # pylint: disable=g-import-not-at-top
    from idm_jax.evaluation import evaluator
    from idm_jax.evaluation import report
    result = evaluator.evaluate_checkpoint(config, workdir / 'checkpoints')
    if jax.process_index() == 0:
      report.write(result, workdir / 'eval')
      print(report.format_table(result.report))
  return 0


if __name__ == '__main__':
  from idm_jax.cli import main as cli_main  # pylint: disable=g-import-not-at-top
  sys.exit(cli_main.entry(['train', *sys.argv[1:]]))
