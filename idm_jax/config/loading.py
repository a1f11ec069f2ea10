"""The one way a config file becomes an experiment config: load, override, validate.

`python -m idm_jax.main` and every `idm-jax` command read `--config path.py[:arg]` and any
`--config.FIELD=value` overrides through ml_collections' `config_flags`, then `validate` the
result: an unknown field, a value of the wrong type or an inconsistent setting stops the program
before anything starts, with one line naming the field.
"""
from collections.abc import Sequence
import importlib.util
import pathlib
import re

from absl import flags
import ml_collections
from ml_collections import config_flags

from idm_jax.config import experiment

OVERRIDE_PREFIX = '--config.'
# Fields earlier versions had, and what replaces them: named when an override still sets one.
REMOVED_FIELDS = {
    'distill.student_steps': 'a student now takes any number of evaluations: pass '
                             '--config.sampler.steps=K (the demo measures 1 to 4)',
}


class ConfigError(ValueError):
  """A config file, override or value that cannot be used; the message names the fix."""


def define_config_flag(flag_values: flags.FlagValues, argv: Sequence[str],
                       purpose: str = '') -> None:
  """`--config` (a configs/*.py file) with its `--config.FIELD=value` overrides, which
  config_flags reads from `argv`; `purpose` ends the flag's help."""
  config_flags.DEFINE_config_file(
      'config', None, 'Experiment config file (configs/*.py[:arg]); any field can be overridden '
      f'with --config.FIELD=value.{" " + purpose if purpose else ""}',
      flag_values=flag_values, lock_config=True, sys_argv=list(argv))


def _config_path(argv: Sequence[str]) -> pathlib.Path | None:
  """The file of `--config=path.py[:arg]` (or `--config path.py`) in argv."""
  for i, arg in enumerate(argv):
    if arg.startswith('--config='):
      return pathlib.Path(arg.split('=', 1)[1].partition(':')[0])
    if arg == '--config' and i + 1 < len(argv):
      return pathlib.Path(argv[i + 1].partition(':')[0])
  return None


def parse(flag_values: flags.FlagValues, argv: Sequence[str]) -> list[str]:
  """absl parsing of `argv` with `--config` errors turned into one-line ConfigErrors."""
  path = _config_path(argv)
  if path is not None and not path.is_file():
    raise ConfigError(f'config file {path} does not exist; pass e.g. --config=configs/demo.py.')
  try:
    return flag_values(list(argv))
  except (AttributeError, KeyError) as e:
    # config_flags raises these for an unknown --config.FIELD, naming the field (and maybe a
    # close match) in its message.
    for arg in argv:
      field = arg.split('=', 1)[0][len(OVERRIDE_PREFIX):]
      if arg.startswith(OVERRIDE_PREFIX) and field in REMOVED_FIELDS:
        raise ConfigError(f'--config.{field} was removed: {REMOVED_FIELDS[field]}.') from None
    text = str(e.args[0]) if e.args else str(e)
    bad = [a.split('=', 1)[0] for a in argv if a.startswith(OVERRIDE_PREFIX)
           and a.split('=', 1)[0].rsplit('.', 1)[-1] in text]
    hint = re.search(r'Did you mean \W*"?([\w.]+)', text)
    raise ConfigError(f'{" ".join(bad) or text}: the config has no such field'
                      + (f' (did you mean {hint.group(1)!r}?)' if hint else '')
                      + '; see the config file for the fields that exist.') from None
  except flags.Error as e:
    text = str(e)
    if 'Non-boolean argument to boolean flag' in text:
      # `--config.F value` was joined to `--config.F=value` (cli.main.overrides_last), which
      # takes the next word for a bare boolean's value when it is not a flag.
      text += ('; a boolean override is --config.FIELD=true or =false (a bare one followed '
               'by an input file takes that file for its value)')
    raise ConfigError(text) from None


def validate(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`experiment.validate`, its errors as ConfigErrors; returns the config."""
  try:
    experiment.validate(config)
  except OSError as e:  # config_flags defers a file it could not load to the first access.
    raise ConfigError(' '.join(str(e).split())) from None
  except (ValueError, TypeError) as e:
    raise ConfigError(f'invalid config: {e}') from None
  return config


def load(spec: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
  """`path/config.py[:arg]` with `--config.FIELD=value` overrides -> a validated config."""
  for arg in overrides:
    if not arg.startswith(OVERRIDE_PREFIX):
      raise ConfigError(f'{arg}: overrides look like --config.FIELD=value.')
  argv = ['idm-jax', f'--config={spec}', *overrides]
  flag_values = flags.FlagValues()
  define_config_flag(flag_values, argv)
  parse(flag_values, argv)
  return validate(flag_values.config)


def sibling(config_file: str, name: str, arg=None) -> ml_collections.ConfigDict:
  """`get_config(arg)` of the config file `name` in the folder of `config_file` (a config's own
  `__file__`), whatever the working directory: for configs that extend another."""
  path = pathlib.Path(config_file).with_name(name)
  spec = importlib.util.spec_from_file_location(f'idm_jax_config_{path.stem}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)
