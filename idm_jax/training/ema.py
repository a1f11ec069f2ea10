"""Exponential moving average of the parameters, the weights evaluation samples from."""
from typing import Any

import jax
import jax.numpy as jnp


def update(ema: Any, params: Any, step: jax.Array, decay: float, start_step: int) -> Any:
  """The EMA after the update that produced `params` at `step` (0-based).

  Until `start_step` it copies the parameters, so it does not average in the random init.
  """
  d = jnp.where(step < start_step, 0.0, decay).astype(jnp.float32)
  return jax.tree.map(lambda e, p: (d * e + (1 - d) * p).astype(p.dtype), ema, params)
