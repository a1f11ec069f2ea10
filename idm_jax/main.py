r"""Trains or evaluates IDM from an ml_collections config file.

  python -m idm_jax.main --config=configs/demo.py --workdir=DIR [--mode=train|eval] \
      [--config.train.batch_size=64 ...]

Every config field can be overridden on the command line. An unknown field or a value of the
wrong type stops the program before anything starts, naming the field. Running the same command
again resumes from the newest checkpoint in DIR/checkpoints.
"""
import sys

import jax
from absl import app
from absl import flags
from absl import logging

from idm_jax import compilation_cache
from idm_jax import distributed
from idm_jax import host_memory
from idm_jax import paths
from idm_jax.config import loading

FLAGS = flags.FLAGS

flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and results: a local '
                    'folder or a URI (gs://BUCKET/DIR, s3://...) that every host can reach.')
flags.DEFINE_enum('mode', 'train', ['train', 'eval'],
                  'train: train (and validate); eval: evaluate WORKDIR/checkpoints.')
flags.DEFINE_enum('distributed', 'auto', distributed.MODES,
                  'Call jax.distributed.initialize(): auto = when a cluster is detected.')
flags.DEFINE_string('coordinator_address', None,
                    'host:port of process 0 for jax.distributed (a plain multi-host job, no SLURM '
                    'or TPU metadata); needs --num_processes and --process_id.')
flags.DEFINE_integer('num_processes', None, 'Processes in the job (with --coordinator_address).')
flags.DEFINE_integer('process_id', None, 'This process, 0 .. num_processes - 1.')
loading.define_config_flag()
flags.mark_flags_as_required(['config', 'workdir'])


def parse_flags(argv: list[str]) -> list[str]:
  """absl parsing with readable errors: `app.run(main, flags_parser=parse_flags)`."""
  try:
    return loading.parse(FLAGS, argv)
  except loading.ConfigError as e:
    sys.exit(f'FATAL: {e}')


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  try:
    config = loading.validate(FLAGS.config)
  except loading.ConfigError as e:
    sys.exit(f'FATAL: {e}')
  host_memory.keep_freed_memory()  # Before XLA's first buffer.

  try:
    distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id,
                           FLAGS.distributed)
  except ValueError as e:
    sys.exit(f'FATAL: {e}')
  logging.info('JAX process %d / %d; local devices: %s', jax.process_index(),
               jax.process_count(), jax.local_devices())

  workdir = paths.resolve(FLAGS.workdir)
  # Imported only now, so flag and config errors come before the model and the data load.
  if FLAGS.mode == 'train':
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


def run() -> None:
  """The program: with the persistent compilation cache (a library caller keeps its own)."""
  compilation_cache.enable()
  app.run(main, flags_parser=parse_flags)


if __name__ == '__main__':
  run()
