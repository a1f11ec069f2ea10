"""JAX's persistent compilation cache, on for the main job and every command.

A program compiled once (the train step of each HR bucket, each sampler size; on GPUs also XLA's
per-fusion autotuning results) is read back by the next run instead of compiled again: a resumed
or repeated run reaches its first step in seconds. Where: $IDM_JAX_COMPILATION_CACHE, else
$JAX_COMPILATION_CACHE_DIR, else ~/.cache/idm_jax/xla ($XDG_CACHE_HOME respected); a bucket
works too (gs://..., shared by a pod's workers). IDM_JAX_COMPILATION_CACHE=0 turns it off.
"""
import os

import jax

from idm_jax import paths

ENV_VAR = 'IDM_JAX_COMPILATION_CACHE'


def default_dir() -> str:
  cache_home = os.environ.get('XDG_CACHE_HOME') or os.path.join('~', '.cache')
  return os.path.join(cache_home, 'idm_jax', 'xla')


def enable() -> str | None:
  """Points JAX's cache at the folder above (before the first compile); returns it, or None
  when turned off."""
  value = os.environ.get(ENV_VAR, '').strip()
  if value.lower() in ('0', 'off', 'false', 'no'):
    return None
  directory = value or jax.config.jax_compilation_cache_dir or default_dir()
  directory = str(paths.resolve(directory))
  jax.config.update('jax_compilation_cache_dir', directory)
  return directory
