"""Joining a multi-process job: `jax.distributed.initialize` from a cluster or explicit flags.

TPU pods, SLURM and Open MPI describe the job in their environment and jax reads it; a job
started by hand names the coordinator, the process count and this process's id (flags, or
JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID). `python -m idm_jax.main` and
`idm-jax evaluate` both start here.
"""
import importlib.util
import os
import pathlib

import jax
from absl import logging

# 'auto': initialise when a cluster or the explicit arguments say so; 'on' / 'off': always / never.
MODES = ('auto', 'on', 'off')


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


def initialize(address: str | None, count: int | None, index: int | None,
               mode: str = 'auto') -> None:
  """Calls `jax.distributed.initialize` when `mode` and the environment say so (see MODES).

  Raises ValueError, naming the flags to add, for an incomplete explicit description.
  """
  explicit = distributed_arguments(address, count, index)
  environment = 'flags' if explicit else cluster_environment()
  if mode == 'on' or (mode == 'auto' and environment):
    logging.info('Initialising jax.distributed (%s).', environment or 'forced')
    jax.distributed.initialize(**explicit)
