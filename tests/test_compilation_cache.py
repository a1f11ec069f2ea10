"""The persistent compilation cache the entry points turn on: where it goes, and that a second
process is served from it."""
import os
import subprocess
import sys

from idm_jax import compilation_cache

_PROGRAM = '''
import jax
from idm_jax import compilation_cache
hits = []
jax.monitoring.register_event_listener(
    lambda name, **kwargs: hits.append(name) if name.endswith('/cache_hits') else None)
print(compilation_cache.enable())
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
jax.jit(lambda x: x * 2 + 1)(1.0).block_until_ready()
print(len(hits))
'''


def _run(tmp_path, **env) -> tuple[str, int]:
  """(the folder `enable` chose, the cache hits of one compile)."""
  environ = {k: v for k, v in os.environ.items()
             if k not in ('IDM_JAX_COMPILATION_CACHE', 'JAX_COMPILATION_CACHE_DIR')}
  environ.update(env)
  result = subprocess.run([sys.executable, '-c', _PROGRAM], env=environ, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  folder, hits = result.stdout.strip().splitlines()[-2:]
  return folder, int(hits)


def test_a_second_process_is_served_from_the_default_folder(tmp_path):
  env = {'XDG_CACHE_HOME': str(tmp_path / 'cache')}
  folder, hits = _run(tmp_path, **env)
  assert folder == str(tmp_path / 'cache' / 'idm_jax' / 'xla' / compilation_cache.host_tag())
  assert hits == 0 and any(os.scandir(folder))
  assert _run(tmp_path, **env) == (folder, 1)  # The same program, read back.


def test_the_variable_picks_the_folder_or_turns_the_cache_off(tmp_path):
  assert _run(tmp_path, IDM_JAX_COMPILATION_CACHE='here')[0] == str(tmp_path / 'here')
  assert any(os.scandir(tmp_path / 'here'))
  assert _run(tmp_path, JAX_COMPILATION_CACHE_DIR=str(tmp_path / 'jax'))[0] == str(
      tmp_path / 'jax')
  # Off even where JAX's own variable names a folder: nothing read, nothing written.
  assert _run(tmp_path, IDM_JAX_COMPILATION_CACHE='0',
              JAX_COMPILATION_CACHE_DIR=str(tmp_path / 'off')) == ('None', 0)
  assert not (tmp_path / 'off').exists() or not any(os.scandir(tmp_path / 'off'))
