"""Imports flow one way: config -> data / models -> diffusion / checkpoints -> inference ->
training / evaluation -> command line. Read from the source (ast), so a lazy import counts too."""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / 'idm_jax'
# Lowest first. A module may import its own package and any lower layer; the shared modules of
# the lowest layer and the entry points of the highest may import each other, and `training`
# uses `evaluation` (its validation is the evaluator).
LAYERS = (
    ('config', 'scale', 'mesh', 'paths', 'compilation_cache', 'distributed', 'host_memory', 'cpu_fast_paths'),
    ('data', 'models'),
    ('diffusion', 'checkpoints'),
    ('inference',),
    ('training', 'evaluation'),
    ('cli', 'tools', 'main'),
)
ALSO_ALLOWED = {('training', 'evaluation')}


def _unit(module: str) -> str:
  """idm_jax.data.pipeline -> data; idm_jax.mesh -> mesh."""
  return module.split('.')[1]


def _rank(unit: str) -> int:
  for rank, units in enumerate(LAYERS):
    if unit in units:
      return rank
  raise AssertionError(f'idm_jax.{unit} is in no layer of {__file__}: add it.')


def _imports(path: pathlib.Path) -> set[str]:
  out = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith('idm_jax.'):
      out.add(node.module)
      out.update(f'{node.module}.{a.name}' for a in node.names if node.module == 'idm_jax')
    elif isinstance(node, ast.ImportFrom) and node.module == 'idm_jax':
      out.update(f'idm_jax.{a.name}' for a in node.names)
    elif isinstance(node, ast.Import):
      out.update(a.name for a in node.names if a.name.startswith('idm_jax.'))
  return out


def _sources():
  return sorted(p for p in PACKAGE.rglob('*.py') if p.name != '__init__.py')


@pytest.mark.parametrize('path', _sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_from_a_higher_layer(path):
  here = _unit('idm_jax.' + '.'.join(path.relative_to(PACKAGE).with_suffix('').parts))
  for module in _imports(path):
    there = _unit(module)
    if there == here or (here, there) in ALSO_ALLOWED:
      continue
    assert _rank(there) < _rank(here) or (
        _rank(there) == _rank(here) in (0, len(LAYERS) - 1)), (
            f'{path.relative_to(PACKAGE)} (layer {_rank(here)}) imports {module} '
            f'(layer {_rank(there)})')


def test_every_package_has_a_layer():
  units = {p.name if p.is_dir() else p.stem for p in PACKAGE.iterdir()
           if (p.is_dir() and (p / '__init__.py').exists()) or
           (p.suffix == '.py' and p.name != '__init__.py')}
  assert units == {u for layer in LAYERS for u in layer}
