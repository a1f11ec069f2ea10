"""The denoising loop: one `jax.lax.scan` over the rows of a `StepTable`."""
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from idm_jax.diffusion import solvers

# eps_fn(x (B, H, W, C), gamma (B,)) -> predicted noise (B, H, W, C).
EpsFn = Callable[[jax.Array, jax.Array], jax.Array]


class Trajectory(NamedTuple):
  """The network's input x_t and its predicted x0 at steps k-1, 2k-1, ... and the last step.

  Each (N, B, H, W, C) with N = ceil(S / k); the final image is x0[-1].
  """
  x: jax.Array
  x0: jax.Array


def split_keys(keys: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Splits each of B per-example keys in two: two (B,) key arrays."""
  pairs = jax.vmap(jax.random.split)(keys)
  return pairs[:, 0], pairs[:, 1]


def normal(keys: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """Standard normal (B, *shape) float32, example b drawn from keys[b] alone."""
  return jax.vmap(lambda k: jax.random.normal(k, shape, jnp.float32))(keys)


def run(eps_fn: EpsFn, x: jax.Array, keys: jax.Array, table: solvers.StepTable, *,
        clip_x0: bool, trajectory_every: int = 0,
        project_x0: Callable[[jax.Array], jax.Array] | None = None
        ) -> tuple[jax.Array, Trajectory | None]:
  """Runs every step of `table` on x (B, H, W, C), zeros to start from pure noise.

  keys (B,) give each example its own noise: every step draws one fresh z (x_T at step 0), so
  the program has a single sampling site whatever the sampler. `project_x0`, if given, maps
  each (clipped) predicted x0 onto the images consistent with the LR input. Returns the final x
  (B, H, W, C) and, when `trajectory_every` = k > 0, the `Trajectory`.
  """
  num_steps = table.gamma.shape[0]
  traj = None
  if trajectory_every > 0:
    slots = -(-num_steps // trajectory_every)
    traj = Trajectory(*(jnp.zeros((slots, *x.shape), jnp.float32) for _ in range(2)))

  def step(carry, row_and_index):
    x, x0_prev, keys, traj = carry
    row, i = row_and_index
    keys, step_keys = split_keys(keys)
    x = x + row.noise * normal(step_keys, x.shape[1:])
    eps = eps_fn(x, jnp.full((x.shape[0],), row.gamma)).astype(jnp.float32)
    x0 = row.recip * x - row.recipm1 * eps
    if clip_x0:
      x0 = jnp.clip(x0, -1.0, 1.0)
    if project_x0 is not None:
      x0 = project_x0(x0)
    if traj is not None:
      # Slot i // k is rewritten on every step of its block, so it ends with the block's last.
      slot = i // trajectory_every
      traj = Trajectory(jax.lax.dynamic_update_index_in_dim(traj.x, x, slot, 0),
                        jax.lax.dynamic_update_index_in_dim(traj.x0, x0, slot, 0))
    return (row.a * x + row.b * x0 + row.c * x0_prev, x0, keys, traj), None

  init = (x.astype(jnp.float32), jnp.zeros(x.shape, jnp.float32), keys, traj)
  (x, _, _, traj), _ = jax.lax.scan(step, init, (table, jnp.arange(num_steps)))
  return x, traj
