r"""Trains or evaluates IDM from an ml_collections config file.

  python -m idm_jax.main --config=configs/demo.py --workdir=DIR [--mode=train|eval] \
      [--config.train.batch_size=64 ...]

Every config field can be overridden on the command line. An unknown field or a value of the
wrong type stops the program before anything starts, naming the field. Running the same command
again resumes from the newest checkpoint in DIR/checkpoints.
"""
import importlib.util
import os
import pathlib
import sys

import jax
from absl import app
from absl import flags
from absl import logging

from idm_jax import host_memory
from idm_jax.config import loading

FLAGS = flags.FLAGS

flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and results.')
flags.DEFINE_enum('mode', 'train', ['train', 'eval'],
                  'train: train (and validate); eval: evaluate WORKDIR/checkpoints.')
flags.DEFINE_enum('distributed', 'auto', ['auto', 'on', 'off'],
                  'Call jax.distributed.initialize(): auto = when a cluster is detected.')
flags.DEFINE_string('coordinator_address', None,
                    'host:port of process 0 for jax.distributed (a plain multi-host job, no SLURM '
                    'or TPU metadata); needs --num_processes and --process_id.')
flags.DEFINE_integer('num_processes', None, 'Processes in the job (with --coordinator_address).')
flags.DEFINE_integer('process_id', None, 'This process, 0 .. num_processes - 1.')
loading.define_config_flag()
flags.mark_flags_as_required(['config', 'workdir'])


def cluster_environment() -> str | None:
  """The multi-process environment this process runs in, if any (what jax can initialise from)."""
  if os.environ.get('JAX_COORDINATOR_ADDRESS'):
    return 'JAX_COORDINATOR_ADDRESS'
  return _scheduler_environment(os.environ)


def _scheduler_environment(env) -> str | None:
  """A scheduler or TPU runtime whose variables jax reads the process count and id from."""
  # A task of an `srun` step (the step variables), in a step of several tasks.
  slurm = ('SLURM_JOB_ID', 'SLURM_STEP_NODELIST', 'SLURM_PROCID', 'SLURM_LOCALID')
  if all(k in env for k in slurm) and int(env.get('SLURM_STEP_NUM_TASKS',
                                                  env.get('SLURM_NTASKS', '1'))) > 1:
    return 'SLURM'
  if int(env.get('OMPI_COMM_WORLD_SIZE', '1')) > 1:
    return 'Open MPI'
  if any(env.get(k) for k in ('TPU_WORKER_HOSTNAMES', 'TPU_PROCESS_ADDRESSES',
                              'MEGASCALE_COORDINATOR_ADDRESS')):
    return 'Cloud TPU'
  tpu_device = pathlib.Path('/dev/accel0').exists() or pathlib.Path('/dev/vfio/0').exists()
  if tpu_device and importlib.util.find_spec('libtpu') is not None:
    return 'Cloud TPU VM'  # jax finds the other workers through the metadata server.
  return None


def distributed_arguments(address: str | None, count: int | None, index: int | None,
                          env: dict[str, str] | None = None) -> dict[str, object]:
  """Keyword arguments for `jax.distributed.initialize` from the explicit flags (or {}).

  jax reads a cluster's own variables (SLURM, Open MPI, Cloud TPU), but a bare
  JAX_COORDINATOR_ADDRESS gives it no process count: the flags, or JAX_NUM_PROCESSES and
  JAX_PROCESS_ID, supply them.
  """
  env = os.environ if env is None else env
  explicit = bool(address) or count is not None or index is not None
  address = address or env.get('JAX_COORDINATOR_ADDRESS') or None
  count = count if count is not None else env.get('JAX_NUM_PROCESSES')
  index = index if index is not None else env.get('JAX_PROCESS_ID')
  if not explicit and (count is None or index is None):
    if address is None or _scheduler_environment(env):
      return {}  # Let jax detect the cluster (SLURM, Open MPI, TPU).
  if address is None or count is None or index is None:
    raise ValueError('a multi-host job started by hand needs all of --coordinator_address '
                     '(host:port of process 0), --num_processes and --process_id (or '
                     'JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID).')
  count, index = int(count), int(index)
  if count < 1 or not 0 <= index < count:
    raise ValueError(f'--process_id {index} must be in [0, --num_processes = {count}).')
  return dict(coordinator_address=address, num_processes=count, process_id=index)


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
    explicit = distributed_arguments(FLAGS.coordinator_address, FLAGS.num_processes,
                                     FLAGS.process_id)
  except ValueError as e:
    sys.exit(f'FATAL: {e}')
  environment = 'flags' if explicit else cluster_environment()
  if FLAGS.distributed == 'on' or (FLAGS.distributed == 'auto' and environment):
    logging.info('Initialising jax.distributed (%s).', environment or 'forced')
    jax.distributed.initialize(**explicit)
  logging.info('JAX process %d / %d; local devices: %s', jax.process_index(),
               jax.process_count(), jax.local_devices())

  workdir = pathlib.Path(FLAGS.workdir)
  # Imported only now, so flag and config errors come before TensorFlow (clu's writers) loads.
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
  app.run(main, flags_parser=parse_flags)


if __name__ == '__main__':
  run()
