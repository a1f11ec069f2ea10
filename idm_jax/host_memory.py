"""Keeps freed host memory in the process, so XLA:CPU's large buffers do not page-fault anew.

XLA:CPU allocates its buffers with malloc (a training step's temporaries are one block of
gigabytes) and frees them after each call. glibc serves blocks above its mmap threshold (at most
32 MiB, and any block over 64 MiB from a thread's arena) with fresh `mmap`s and unmaps them on
free, so the kernel zero-fills every page again on every call, which slowed elementwise ops
several times over (README, 'Benchmarks'). One arena, no mmap and no
trimming keep those pages mapped and reused instead; the cost is that the process keeps its peak
heap until it exits. Set IDM_JAX_SYSTEM_MALLOC=1 (or IDM_JAX_CPU_FAST_PATHS=0) to opt out. It
is applied only when JAX will run on the CPU: GPU and TPU hosts keep device buffers off this heap
and would only keep their peak host memory for nothing.
"""
import ctypes
import ctypes.util
import importlib.util
import os

from idm_jax import cpu_fast_paths

# Plugins that give JAX an accelerator backend when installed.
_ACCELERATOR_PLUGINS = ('jax_cuda12_plugin', 'jax_cuda13_plugin', 'jax_rocm60_plugin',
                        'jax_rocm7_plugin', 'libtpu')


def cpu_backend_expected() -> bool:
  """Whether JAX's default backend will be the CPU, decided before JAX initialises any backend:
  from JAX_PLATFORMS if set, else from which accelerator plugins are installed."""
  platforms = os.environ.get('JAX_PLATFORMS', '').strip().lower()
  if platforms:
    return platforms.split(',')[0].strip() == 'cpu'
  return not any(importlib.util.find_spec(name) is not None for name in _ACCELERATOR_PLUGINS)

# mallopt parameters from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8


def keep_freed_memory() -> bool:
  """Tunes glibc's malloc as above; True if applied (False off glibc, off the CPU backend, or
  when opted out)."""
  if os.environ.get('IDM_JAX_SYSTEM_MALLOC', '') not in ('', '0') or not cpu_fast_paths.enabled():
    return False
  if not cpu_backend_expected():
    return False
  name = ctypes.util.find_library('c')
  if name is None:
    return False
  try:
    libc = ctypes.CDLL(name)
    libc.gnu_get_libc_version  # Only glibc has this; musl and macOS keep their allocators.
  except (OSError, AttributeError):
    return False
  # Per mallopt(3): at most 1 arena; 0 mmapped blocks; a trim threshold of -1 never trims.
  settings = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1))
  return all(libc.mallopt(param, value) == 1 for param, value in settings)
