"""Flags that several commands share, defined once: the experiment config with its overrides,
the checkpoint, the sampler, and joining a multi-host job.

Every command defines its flags on a fresh `absl.flags.FlagValues` (so the commands can run one
after another in one process, as the tests do); the config flag is ml_collections'
`config_flags`, which reads `--config.FIELD=value` overrides with the field's own type.
"""
from collections.abc import Sequence

import ml_collections
from absl import flags

from idm_jax import distributed
from idm_jax.config import diffusion as diffusion_config
from idm_jax.config import loading

CHECKPOINT_HELP = "Orbax checkpoint folder: a run's checkpoints/ or `idm-jax convert` output."
# What a command that reads files reports as one line naming the fix (exit status 2).
INPUT_ERRORS = (FileNotFoundError, FileExistsError, ValueError, ImportError)


class UsageError(ValueError):
  """A command line that cannot be run: the message names the fix."""


def define_config(fv: flags.FlagValues, argv: Sequence[str], purpose: str = '') -> None:
  """--config path.py[:arg] and its --config.FIELD=value overrides, required."""
  loading.define_config_flag(fv, argv, purpose)
  flags.mark_flag_as_required('config', flag_values=fv)


def define_checkpoint(fv: flags.FlagValues) -> None:
  flags.DEFINE_string('checkpoint', None, CHECKPOINT_HELP, flag_values=fv, required=True)


def define_sampler(fv: flags.FlagValues) -> None:
  """--sampler, --steps, --consistency: shorthands for their sampler.* config fields; --params."""
  flags.DEFINE_enum('sampler', None, diffusion_config.SAMPLERS,
                    "Sets sampler.name; default: the config's.", flag_values=fv)
  flags.DEFINE_integer('steps', None, 'Sets sampler.steps, the network evaluations per sample.',
                       lower_bound=1, flag_values=fv)
  flags.DEFINE_enum('consistency', None, diffusion_config.CONSISTENCY_METHODS,
                    'Sets sampler.consistency: make the output consistent with the input under '
                    "this degradation (none: off); the config's 'auto' is the training data's "
                    'data.degradation.', flag_values=fv)
  flags.DEFINE_enum('params', 'ema', ('ema', 'raw'),
                    'Restore the EMA parameters (default) or the raw ones.', flag_values=fv)


def define_distributed(fv: flags.FlagValues) -> None:
  """How this process joins a multi-host job (`idm_jax.distributed`)."""
  flags.DEFINE_enum('distributed', 'auto', distributed.MODES,
                    'Call jax.distributed.initialize(): auto = when a cluster (SLURM, Cloud TPU, '
                    'Open MPI) or the flags below say so.', flag_values=fv)
  flags.DEFINE_string('coordinator_address', None,
                      'host:port of process 0 for jax.distributed (a plain multi-host job, no '
                      'cluster metadata); needs --num_processes and --process_id.', flag_values=fv)
  flags.DEFINE_integer('num_processes', None, 'Processes in the job (with --coordinator_address).',
                       flag_values=fv)
  flags.DEFINE_integer('process_id', None, 'This process, 0 .. num_processes - 1.',
                       flag_values=fv)


def initialize_distributed(fv: flags.FlagValues) -> None:
  """Joins the job the flags describe; UsageError for incomplete flags (`jax.distributed`'s own
  failures keep their traceback)."""
  try:
    distributed.distributed_arguments(fv.coordinator_address, fv.num_processes, fv.process_id)
  except ValueError as e:
    raise UsageError(str(e)) from None
  distributed.initialize(fv.coordinator_address, fv.num_processes, fv.process_id,
                         fv.distributed)


def config(fv: flags.FlagValues) -> ml_collections.ConfigDict:
  """The config with its overrides and, where defined, the sampler flags applied; validated."""
  cfg = fv.config
  if 'sampler' in fv:
    for field, value in (('name', fv.sampler), ('steps', fv.steps),
                         ('consistency', fv.consistency)):
      if value is not None:
        cfg.sampler[field] = value
  return loading.validate(cfg)
