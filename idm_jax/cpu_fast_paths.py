"""One switch for every CPU-only speed-up: IDM_JAX_CPU_FAST_PATHS=0 turns them all off.

The fast paths are the Winograd / im2col / row-product convolutions of `models/conv2d.py` and the
glibc malloc settings of `host_memory.py`. They were tuned on AMD Zen 3 and re-checked on each CPU
the README names; on another CPU, or to rule them out when debugging, turn them off and XLA's own
convolutions and the system allocator run instead. Read when a program is traced; the
convolutions also only take them when JAX's backend is the CPU (on a GPU or TPU they would only
lengthen tracing and compiling).
"""
import contextlib
import os

ENV_VAR = 'IDM_JAX_CPU_FAST_PATHS'
_forced: list[bool] = []


def enabled() -> bool:
  if _forced:
    return _forced[-1]
  return os.environ.get(ENV_VAR, '1').strip().lower() not in ('0', 'false', 'off', 'no')


@contextlib.contextmanager
def forced(value: bool):
  """Traces inside see `enabled() == value` (e.g. the model's own FLOPs: direct convolutions)."""
  _forced.append(value)
  try:
    yield
  finally:
    _forced.pop()
