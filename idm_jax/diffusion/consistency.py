"""Consistency with the LR input: projecting an HR estimate onto {x : A x = y}.

The LR image y was made from the HR image by a known linear degradation A (`data.degradation`),
separable as A = R_h (x) R_w with one (lr, hr) matrix per axis. Among all images consistent with
y, the closest to an estimate x is
    x + A^+ (y - A x),   A^+ = R_h^+ (x) R_w^+,
i.e. four small matrix products per image. The sampler applies it to every step's predicted x0
and to the final image, so low frequencies (colour, brightness) come from the LR input exactly and
the network only has to supply the detail that A removes. The pseudo-inverses are computed once per
(LR size, output size) in float64 on the host and enter the jitted sampler as traced arrays.
"""
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from idm_jax.config.diffusion import CONSISTENCY_METHODS as METHODS
from idm_jax.data import degradation



class Projector(NamedTuple):
  """A separable degradation and its pseudo-inverse; float32, a pytree of arrays."""
  down_h: jax.Array  # (h, H)
  down_w: jax.Array  # (w, W)
  up_h: jax.Array  # (H, h) = pinv(down_h)
  up_w: jax.Array  # (W, w) = pinv(down_w)


@functools.lru_cache(maxsize=64)
def _host_matrices(method: str, lr_hw: tuple[int, int],
                   out_hw: tuple[int, int]) -> tuple[np.ndarray, ...]:
  downs = [degradation.axis_matrix(method, o, i) for i, o in zip(lr_hw, out_hw)]
  ups = [np.linalg.pinv(d) for d in downs]  # Full row rank: d^T (d d^T)^-1.
  return tuple(np.asarray(m, np.float32) for m in (*downs, *ups))


def make_projector(method: str, lr_hw: tuple[int, int],
                   out_hw: tuple[int, int]) -> Projector | None:
  """The projector for LR (h, w) -> output (H, W) under `method`; None for 'none'."""
  if method not in METHODS:
    raise ValueError(f'consistency {method!r}: choose one of {METHODS}.')
  if method == 'none':
    return None
  lr_hw, out_hw = tuple(map(int, lr_hw)), tuple(map(int, out_hw))
  if any(o < i for i, o in zip(lr_hw, out_hw)):
    raise ValueError(f'consistency projection needs an output {out_hw} at least the LR {lr_hw}.')
  return Projector(*_host_matrices(method, lr_hw, out_hw))


def downsample(projector: Projector, x: jax.Array) -> jax.Array:
  """A x: (B, H, W, C) -> (B, h, w, C)."""
  return jnp.einsum('hH,bHWc,wW->bhwc', projector.down_h, x, projector.down_w,
                    precision=jax.lax.Precision.HIGHEST)


def upsample(projector: Projector, y: jax.Array) -> jax.Array:
  """A^+ y: (B, h, w, C) -> (B, H, W, C)."""
  return jnp.einsum('Hh,bhwc,Ww->bHWc', projector.up_h, y, projector.up_w,
                    precision=jax.lax.Precision.HIGHEST)


def project(projector: Projector, x: jax.Array, y: jax.Array) -> jax.Array:
  """The image closest to x (B, H, W, C) whose degradation is y (B, h, w, C)."""
  x = x.astype(jnp.float32)
  return x + upsample(projector, y.astype(jnp.float32) - downsample(projector, x))
