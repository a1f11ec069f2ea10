"""The training tests' micro experiment as a config file, for `python -m idm_jax.main` runs."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from tests.training import common  # pylint: disable=g-import-not-at-top


def get_config(arg=None):
  del arg
  return common.micro_config()
