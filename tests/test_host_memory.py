"""keep_freed_memory(): large blocks stay in the heap instead of being mapped afresh each time."""
import json
import os
import subprocess
import sys

# Runs in a fresh interpreter: glibc's settings are process-wide and cannot be undone. Reports,
# before and after the call, how many blocks glibc maps with mmap for one 3 GiB block, and how
# much heap it keeps after that block is freed.
_PROBE = r'''
import ctypes, ctypes.util, json
from idm_jax import host_memory

libc = ctypes.CDLL(ctypes.util.find_library('c'))

class MallInfo2(ctypes.Structure):
  _fields_ = [(name, ctypes.c_size_t) for name in (
      'arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks', 'fsmblks', 'uordblks',
      'fordblks', 'keepcost')]

libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

def probe():
  already = libc.mallinfo2().hblks
  block = libc.malloc(3 << 30)  # Above 2 GiB: as large as a training step's temporaries.
  mapped = libc.mallinfo2().hblks - already
  libc.free(block)
  return {'mapped_blocks': mapped, 'heap_kept': libc.mallinfo2().arena}

before = probe()
applied = host_memory.keep_freed_memory()
print(json.dumps({'before': before, 'applied': applied, 'after': probe()}))
'''


def _run_probe(**env):
  result = subprocess.run([sys.executable, '-c', _PROBE], capture_output=True, text=True,
                          check=True, env={**os.environ, **env})
  return json.loads(result.stdout)


def test_large_blocks_come_from_the_kept_heap():
  report = _run_probe(IDM_JAX_SYSTEM_MALLOC='0')
  assert report['applied']
  # glibc's default: a large block is its own mapping, unmapped (page-faulted anew) on free.
  assert report['before']['mapped_blocks'] == 1
  assert report['before']['heap_kept'] < 3 << 30
  # Tuned: it comes from the heap, which keeps the pages after the free for the next block.
  assert report['after']['mapped_blocks'] == 0
  assert report['after']['heap_kept'] >= 3 << 30


def test_opt_out_leaves_malloc_alone():
  report = _run_probe(IDM_JAX_SYSTEM_MALLOC='1')
  assert not report['applied']
  assert report['after']['mapped_blocks'] == 1


def test_not_applied_off_the_cpu_backend_or_without_fast_paths():
  for env in ({'JAX_PLATFORMS': 'cuda'}, {'JAX_PLATFORMS': 'tpu,cpu'},
              {'JAX_PLATFORMS': 'cpu', 'IDM_JAX_CPU_FAST_PATHS': '0'}):
    report = _run_probe(IDM_JAX_SYSTEM_MALLOC='0', **env)
    assert not report['applied'], env
    assert report['after']['mapped_blocks'] == 1, env
