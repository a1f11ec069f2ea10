"""FLOP counts for the benchmarks: the model's (direct convolutions) and what XLA:CPU executes.

On CPU most 3x3 convolutions run Winograd's algorithm (idm_jax/models/conv2d.py), which does
fewer multiplications than the model nominally needs; TFLOP/s and model FLOP utilisation are
quoted against the nominal count, which is XLA's count of the graph as lowered for GPUs, where
every convolution is direct.
"""
import jax


def _flops(analysis) -> float | None:
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else None
  return float(analysis['flops']) if analysis and 'flops' in analysis else None


def model_flops(jitted, *args) -> float | None:
  """FLOPs of one call of `jitted` (a jax.jit function) on `args`, with direct convolutions."""
  return _flops(jitted.trace(*args).lower(lowering_platforms=('cuda',)).cost_analysis())


def executed_flops(compiled) -> float | None:
  """FLOPs XLA counts in the compiled executable (Winograd's on CPU)."""
  return _flops(compiled.cost_analysis())
