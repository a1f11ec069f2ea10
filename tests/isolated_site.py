"""A Python in which some installed packages are absent, as on a machine that never had them.

The suite's environment has the TFDS extra (TensorFlow) installed; the main job, the commands
and the accelerator check must run where it is not (accelerator images ship JAX without
TensorFlow, clu or grain). `python -S` skips site-packages, and PYTHONPATH holds links to every
entry of it except the blocked distributions, so `import tensorflow` and
`importlib.util.find_spec('tensorflow')` fail exactly as on such a machine.
"""
import os
import pathlib
import re
import site
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def _blocked(name: str, prefixes: tuple[str, ...]) -> bool:
  return any(re.match(rf'{re.escape(p)}([-_.]|$)', name.lower()) for p in prefixes)


def python_without(prefixes: tuple[str, ...], folder: pathlib.Path,
                   env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
  """(command prefix, environment) of a Python lacking every distribution whose top-level
  module or dist-info name starts with one of `prefixes` ('tensorflow' also blocks
  tensorflow_datasets). `folder` receives the links."""
  folder.mkdir(parents=True, exist_ok=True)
  for site_packages in site.getsitepackages():
    for entry in pathlib.Path(site_packages).iterdir():
      if entry.suffix == '.pth' or _blocked(entry.name, prefixes):
        continue
      link = folder / entry.name
      if not link.exists():
        link.symlink_to(entry)
  env = dict(env)
  env['PYTHONPATH'] = os.pathsep.join([str(folder), str(REPO)])
  return [sys.executable, '-S'], env
