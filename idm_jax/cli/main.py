"""The `idm-jax` command: train, distill, evaluate, upscale, convert.

  idm-jax train --config=configs/demo.py --workdir=runs/demo [--config.train.batch_size=8]
  idm-jax distill --config=configs/demo_distill.py --teacher=runs/demo/checkpoints --workdir=D
  idm-jax evaluate --config configs/ffhq_16_128.py --checkpoint runs/ffhq/checkpoints
  idm-jax upscale photo.jpg --checkpoint DIR --config CONFIG --scale 3.5
  idm-jax convert --torch-checkpoint I640000_E37_gen.pth --config configs/ffhq_16_128.py --output ckpt

Every command reads its config as training does: `--config path.py[:arg]` and any number of
`--config.FIELD=value` overrides (e.g. --config.sampler.steps=10), validated before anything runs.
"""
import argparse
import importlib
import sys

from idm_jax import compilation_cache
from idm_jax import host_memory
from idm_jax.config import loading

# Subcommand -> module with `add_arguments(parser)` and `run(args) -> int`.
_SUBCOMMANDS = {
    'evaluate': ('idm_jax.cli.evaluate', 'evaluate a checkpoint on a dataset at many scales'),
    'upscale': ('idm_jax.cli.upscale', 'super-resolve image files at any scale'),
    'convert': ('idm_jax.cli.convert', 'official PyTorch checkpoint -> Orbax checkpoint'),
}


def split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
  """(`--config.FIELD=value` overrides as `--config.FIELD=value`, the other arguments)."""
  overrides, rest = [], []
  args = iter(argv)
  for arg in args:
    if arg.startswith(loading.OVERRIDE_PREFIX):
      overrides.append(arg if '=' in arg else f'{arg}={next(args, "")}')
    else:
      rest.append(arg)
  return overrides, rest


def teacher_override(argv: list[str]) -> list[str]:
  """`distill` arguments as training's: `--teacher DIR` becomes `--config.distill.teacher=DIR`."""
  out, args = [], iter(argv)
  for arg in args:
    if arg == '--teacher':
      arg = f'--teacher={next(args, "")}'
    out.append(f'{loading.OVERRIDE_PREFIX}distill.teacher={arg.split("=", 1)[1]}'
               if arg.startswith('--teacher=') else arg)
  return out


def run(argv: list[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  host_memory.keep_freed_memory()
  if argv and argv[0] in ('train', 'distill'):
    # Training is the absl program `python -m idm_jax.main`; its flags pass through unchanged.
    # Distillation is training with `distill.teacher` set (configs/demo_distill.py).
    from absl import app  # pylint: disable=g-import-not-at-top
    from idm_jax import main as train_main  # pylint: disable=g-import-not-at-top
    flags = teacher_override(argv[1:]) if argv[0] == 'distill' else argv[1:]
    app.run(train_main.main, argv=[f'idm-jax {argv[0]}', *flags],
            flags_parser=train_main.parse_flags)  # Exits the process; it never returns.
  parser = argparse.ArgumentParser(prog='idm-jax', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  commands = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
  commands.add_parser('train', help='train from a config (flags as `python -m idm_jax.main`)')
  commands.add_parser('distill', help='distil a checkpoint into a few-step student: train with '
                      '--teacher=CHECKPOINT_DIR (sets distill.teacher)')
  for name, (module_name, help_text) in _SUBCOMMANDS.items():
    sub = commands.add_parser(name, help=help_text)
    # Only the chosen command's module is imported: each pulls in its own dependencies.
    if argv and argv[0] == name:
      module = importlib.import_module(module_name)
      module.add_arguments(sub)
      sub.set_defaults(handler=module.run)
  overrides, rest = split_overrides(argv)
  args = parser.parse_args(rest)
  args.config_overrides = overrides
  try:
    return args.handler(args)
  except (FileNotFoundError, FileExistsError, ValueError, ImportError) as e:
    print(f'idm-jax {args.command}: error: {e}', file=sys.stderr)
    return 2


def entry() -> int:
  """The `idm-jax` program: `run` with the persistent compilation cache on (`run` alone, as
  tests call it, leaves the caller's JAX settings as they are)."""
  compilation_cache.enable()
  return run()


if __name__ == '__main__':
  sys.exit(entry())
