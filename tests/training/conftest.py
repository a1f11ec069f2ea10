"""Training tests share compiled programs through JAX's persistent compilation cache.

On two CPU cores one compilation of the micro train step takes about half a minute; with the
cache every later test and subprocess that runs the same program loads it in about a second.
"""
import os

import jax
import pytest
from jax.experimental.compilation_cache import compilation_cache


@pytest.fixture(scope='session')
def xla_cache_dir(request) -> str:
  return os.fspath(request.config.cache.mkdir('idm_jax_training_xla'))


@pytest.fixture(scope='module', autouse=True)
def persistent_compilation_cache(xla_cache_dir):
  """Turns the cache on for this module's tests only, then restores the previous setting."""
  previous = (jax.config.jax_compilation_cache_dir,
              jax.config.jax_persistent_cache_min_compile_time_secs)
  jax.config.update('jax_compilation_cache_dir', xla_cache_dir)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)
  compilation_cache.reset_cache()
  yield
  jax.config.update('jax_compilation_cache_dir', previous[0])
  jax.config.update('jax_persistent_cache_min_compile_time_secs', previous[1])
  compilation_cache.reset_cache()


@pytest.fixture
def subprocess_env(xla_cache_dir) -> dict[str, str]:
  """Environment for a training subprocess: this session's devices, flags and cache."""
  env = dict(os.environ)
  env['JAX_COMPILATION_CACHE_DIR'] = xla_cache_dir
  env['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0.5'
  return env
