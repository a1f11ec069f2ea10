"""Load an experiment config from `configs/NAME.py[:ARG]`, as `--config` does in `main`."""
import importlib.util
import pathlib

import ml_collections


def load_config(spec: str) -> ml_collections.ConfigDict:
  """`path/to/config.py` or `path/to/config.py:arg` -> the file's `get_config([arg])`."""
  path_str, sep, arg = spec.partition(':')
  path = pathlib.Path(path_str)
  if not path.is_file():
    raise FileNotFoundError(f'config file {path} does not exist; pass e.g. '
                            '--config configs/ffhq_16_128.py')
  module_spec = importlib.util.spec_from_file_location(f'_idm_config_{path.stem}', path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, 'get_config'):
    raise ValueError(f'{path} defines no get_config(); every file in configs/ must.')
  config = module.get_config(arg) if sep else module.get_config()
  if not isinstance(config, ml_collections.ConfigDict) or 'model' not in config:
    raise ValueError(f'{path}: get_config() must return a ConfigDict with a `model` section.')
  return config
