"""JAX's persistent compilation cache, on for the main job and every command.

A program compiled once (the train step of each HR bucket, each sampler size; on GPUs also XLA's
per-fusion autotuning results) is read back by the next run instead of compiled again: a resumed
or repeated run reaches its first step sooner. Where: $IDM_JAX_COMPILATION_CACHE, else
$JAX_COMPILATION_CACHE_DIR, else ~/.cache/idm_jax/xla/<host> ($XDG_CACHE_HOME respected), where
<host> names the processor's architecture and instruction-set extensions: XLA:CPU programs are
built for the host's, and a home folder shared by machines of several CPU generations would
otherwise trade programs that the others refuse. A bucket works too (gs://..., shared by a pod's
workers). IDM_JAX_COMPILATION_CACHE=0 turns the cache off.
"""
import contextlib
import hashlib
import os
import platform

import jax

from idm_jax import paths

ENV_VAR = 'IDM_JAX_COMPILATION_CACHE'


def host_tag() -> str:
  """e.g. 'x86_64-3f2a9c1d': the machine and a digest of its CPU feature flags (Linux)."""
  flags = ''
  with contextlib.suppress(OSError):  # No /proc/cpuinfo (not Linux): the machine name alone.
    with open('/proc/cpuinfo') as f:
      flags = next((line for line in f if line.startswith(('flags', 'Features'))), '')
  return f'{platform.machine()}-{hashlib.sha1(flags.encode()).hexdigest()[:8]}'


def default_dir() -> str:
  cache_home = os.environ.get('XDG_CACHE_HOME') or os.path.join('~', '.cache')
  return os.path.join(cache_home, 'idm_jax', 'xla', host_tag())


def enable() -> str | None:
  """Points JAX's cache at the folder above (before the first compile); returns it, or None
  when turned off."""
  value = os.environ.get(ENV_VAR, '').strip()
  if value.lower() in ('0', 'off', 'false', 'no'):
    jax.config.update('jax_enable_compilation_cache', False)
    return None
  directory = value or jax.config.jax_compilation_cache_dir or default_dir()
  directory = str(paths.resolve(directory))
  jax.config.update('jax_compilation_cache_dir', directory)
  return directory
