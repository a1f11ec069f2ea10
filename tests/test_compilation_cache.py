"""The persistent compilation cache the entry points turn on: where it goes, and that it fills."""
import os
import subprocess
import sys

_PROGRAM = '''
import jax
from idm_jax import compilation_cache
print(compilation_cache.enable())
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
jax.jit(lambda x: x * 2 + 1)(1.0).block_until_ready()
'''


def _run(tmp_path, **env):
  environ = {k: v for k, v in os.environ.items()
             if k not in ('IDM_JAX_COMPILATION_CACHE', 'JAX_COMPILATION_CACHE_DIR')}
  environ.update(env)
  result = subprocess.run([sys.executable, '-c', _PROGRAM], env=environ, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout.strip().splitlines()[-1]


def test_default_folder_under_the_cache_home_fills(tmp_path):
  folder = _run(tmp_path, XDG_CACHE_HOME=str(tmp_path / 'cache'))
  assert folder == str(tmp_path / 'cache' / 'idm_jax' / 'xla')
  assert any(os.scandir(folder)), 'nothing was cached'


def test_the_variable_picks_the_folder_or_turns_it_off(tmp_path):
  assert _run(tmp_path, IDM_JAX_COMPILATION_CACHE='here') == str(tmp_path / 'here')
  assert any(os.scandir(tmp_path / 'here'))
  assert _run(tmp_path, IDM_JAX_COMPILATION_CACHE='0') == 'None'
  assert _run(tmp_path, JAX_COMPILATION_CACHE_DIR=str(tmp_path / 'jax')) == str(tmp_path / 'jax')
