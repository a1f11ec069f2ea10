"""FLOP counts for the benchmarks: the model's (direct convolutions) and what XLA executes.

The model's count walks the traced program (jaxpr) with the CPU fast paths off and adds up
2 x multiply-adds of every convolution and matrix product, gradients included: the same number on
every backend, and it needs no XLA cost analysis (which the CUDA plugin does not offer before
compiling). On CPU most 3x3 convolutions then run Winograd's algorithm (models/conv2d.py), which
does fewer multiplications: `executed_flops` is XLA's count of the compiled program.
"""
import math

import jax

from idm_jax import cpu_fast_paths


def _eqn_flops(eqn) -> int:
  if eqn.primitive.name == 'dot_general':
    lhs, rhs = (v.aval.shape for v in eqn.invars)
    (lhs_contract, _), (lhs_batch, _) = eqn.params['dimension_numbers']
    out = math.prod(eqn.outvars[0].aval.shape)
    return 2 * out * math.prod(lhs[d] for d in lhs_contract)
  if eqn.primitive.name == 'conv_general_dilated':
    rhs = eqn.invars[1].aval.shape
    spec = eqn.params['dimension_numbers'].rhs_spec  # (out, in, spatial...) positions.
    per_output = math.prod(rhs[d] for d in spec[1:])  # in/groups x kernel window.
    return 2 * math.prod(eqn.outvars[0].aval.shape) * per_output
  return 0


def _jaxpr_flops(jaxpr) -> int:
  total = 0
  for eqn in jaxpr.eqns:
    total += _eqn_flops(eqn)
    if eqn.primitive.name == 'cond':
      # One branch runs: the dearest (a platform switch's direct convolution, where a cached
      # trace still holds the CPU's Winograd branch beside it).
      total += max(_jaxpr_flops(branch.jaxpr) for branch in eqn.params['branches'])
      continue
    for param in eqn.params.values():
      for sub in param if isinstance(param, (list, tuple)) else (param,):
        if type(sub).__name__ == 'ClosedJaxpr':
          total += _jaxpr_flops(sub.jaxpr)
        elif type(sub).__name__ == 'Jaxpr':
          total += _jaxpr_flops(sub)
  return total


def model_flops(fn, *args) -> float:
  """2 x multiply-adds of the convolutions and matrix products of one call of `fn` on `args`,
  with direct convolutions; a `cond` counts its dearest branch."""
  with cpu_fast_paths.forced(False):
    closed = jax.make_jaxpr(fn)(*args)
  return float(_jaxpr_flops(closed.jaxpr))


def significant(x: float | None, digits: int = 4) -> float | None:
  """`x` rounded to `digits` significant digits (FLOP counts span toy to face sizes)."""
  return None if x is None else float(f'{x:.{digits}g}')


def executed_flops(compiled) -> float | None:
  """FLOPs XLA counts in the compiled executable (Winograd's on CPU), if it reports them."""
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else None
  return float(analysis['flops']) if analysis and 'flops' in analysis else None
