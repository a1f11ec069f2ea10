"""The `idm-jax` command: train, distill, evaluate, upscale, convert.

  idm-jax train --config=configs/demo.py --workdir=runs/demo [--config.train.batch_size=8]
  idm-jax distill --config=configs/demo_distill.py --teacher=runs/demo/checkpoints --workdir=D
  idm-jax evaluate --config=configs/ffhq_16_128.py --checkpoint=runs/ffhq/checkpoints
  idm-jax upscale photo.jpg --checkpoint=DIR --config=CONFIG --scale=3.5
  idm-jax convert --torch_checkpoint=I640000_E37_gen.pth --config=configs/ffhq_16_128.py --output=D

Every command takes absl flags (`--flag=value` or `--flag value`, names with underscores) and
reads its config as training does: `--config=path.py[:arg]` and any number of
`--config.FIELD=value` (or `--config.FIELD value`) overrides anywhere on the line (e.g.
--config.sampler.steps=10), validated before anything runs. `idm-jax COMMAND --help` lists a
command's flags; `--flagfile=FILE` reads flags from a file.
"""
import faulthandler
import importlib
import re
import sys
from collections.abc import Sequence

from absl import flags
from absl import logging

from idm_jax import compilation_cache
from idm_jax import host_memory
from idm_jax.cli import flag_groups
from idm_jax.config import loading

# Command -> (its module, what it does). A module has `define_flags(flag_values, argv)`,
# `run(flag_values, args) -> int`, INPUT_ERRORS (exceptions reported as one line, exit status 2)
# and LOGS_PROGRESS (absl's INFO lines on stderr, as under `app.run`). `python -m idm_jax.main`
# is `train`; `distill` is `train` with --teacher.
COMMANDS = {
    'train': ('idm_jax.main', 'train (and validate) from a config; --mode=eval evaluates'),
    'distill': ('idm_jax.main', 'distil a checkpoint into a few-step student: train with '
                '--teacher=CHECKPOINT_DIR (sets distill.teacher)'),
    'evaluate': ('idm_jax.cli.evaluate', 'evaluate a checkpoint on a dataset at many scales'),
    'upscale': ('idm_jax.cli.upscale', 'super-resolve image files at any scale'),
    'convert': ('idm_jax.cli.convert', 'official PyTorch checkpoint -> Orbax checkpoint'),
}
_HELP = ('-h', '--help', '--helpfull', '--helpshort')
_OVERRIDE = re.compile(r'--?(no)?config\.')  # --config.F, -config.F, --noconfig.F (false).
_FLAG = re.compile(r'--?[A-Za-z]')  # Not a value such as -1.


def _usage() -> str:
  commands = '\n'.join(f'  {name:<9} {text}' for name, (_, text) in COMMANDS.items())
  return f'{__doc__}\ncommands:\n{commands}\n'


def overrides_last(args: Sequence[str]) -> list[str]:
  """`args` with the config overrides moved after the other flags (before a `--`, if any): the
  config flag reads them only after --config. `--config.FIELD value` is written
  `--config.FIELD=value`, so that absl does not leave a boolean's value as a positional
  argument; an override followed by a flag, or by nothing, stays bare (a boolean set to true,
  or absl's missing-value error). Overrides inside a --flagfile are read in their place."""
  overrides, rest = [], []
  items = list(args)
  end = items.index('--') if '--' in items else len(items)
  i = 0
  while i < end:
    arg, match = items[i], _OVERRIDE.match(items[i])
    if match and '=' not in arg and not match.group(1) and i + 1 < end and not _FLAG.match(
        items[i + 1]):
      overrides.append(f'{arg}={items[i + 1]}')
      i += 1
    elif match:
      overrides.append(arg)
    else:
      rest.append(arg)
    i += 1
  return rest + overrides + items[end:]


def _log_as_absl_app_run() -> None:
  """INFO lines with time and place on stderr, as under absl's `app.run`; absl logs only
  warnings until its own (process-wide) flags count as parsed, which no command's flags are."""
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  logging.use_absl_handler()
  logging.set_verbosity(logging.INFO)


def run(argv: Sequence[str] | None = None) -> int:
  """Runs `idm-jax argv...` in this process; returns the exit status (2: bad usage or input)."""
  argv = list(sys.argv[1:] if argv is None else argv)
  host_memory.keep_freed_memory()  # Before XLA's first buffer.
  if not argv or argv[0] in _HELP:
    print(_usage(), file=sys.stdout if argv else sys.stderr)
    return 0 if argv else 2
  command, args = argv[0], argv[1:]
  if command not in COMMANDS:
    print(f'idm-jax: error: unknown command {command!r}; choose one of {", ".join(COMMANDS)}.',
          file=sys.stderr)
    return 2
  # Only the chosen command's module is imported: each pulls in its own dependencies.
  module = importlib.import_module(COMMANDS[command][0])
  program = [f'idm-jax {command}', *overrides_last(args)]
  fv = flags.FlagValues()
  module.define_flags(fv, program)
  if any(arg in _HELP for arg in args):
    print(f'{module.__doc__}\nflags:\n{fv.get_help(include_special_flags=False)}')
    return 0
  if sys.__stderr__ is not None and not faulthandler.is_enabled():
    faulthandler.enable(sys.__stderr__)  # A crash in native code still leaves a Python stack.
  if module.LOGS_PROGRESS:
    _log_as_absl_app_run()
  try:
    return module.run(fv, loading.parse(fv, program)[1:])
  except (loading.ConfigError, flag_groups.UsageError, *module.INPUT_ERRORS) as e:
    print(f'idm-jax {command}: error: {" ".join(str(e).split())}', file=sys.stderr)
    return 2


def entry(argv: Sequence[str] | None = None) -> int:
  """The program: `run` with the persistent compilation cache on (`run` alone, as tests call
  it, leaves the caller's JAX settings as they are)."""
  compilation_cache.enable()
  return run(argv)


if __name__ == '__main__':
  sys.exit(entry())
