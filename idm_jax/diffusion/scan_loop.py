"""The denoising loop: one `jax.lax.scan` over the rows of a `StepTable`."""
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from idm_jax.diffusion import solvers

# eps_fn(x (B, H, W, C), gamma (B,)) -> the network's output (B, H, W, C): the predicted noise
# (or, for a distilled student, what `student.reading` reads by level).
EpsFn = Callable[[jax.Array, jax.Array], jax.Array]


class Trajectory(NamedTuple):
  """The network's input x_t and its predicted x0 at recorded steps, each (N, B, H, W, C).

  `trajectory_every` = k records steps k-1, 2k-1, ... and the last (N = ceil(S / k); the final
  image is x0[-1]); `record_steps` the steps it lists, in its order.
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


def predicted_x0(x: jax.Array, out: jax.Array, recip: jax.Array, recipm1: jax.Array, *,
                 clip_x0: bool, project_x0: Callable[[jax.Array], jax.Array] | None) -> jax.Array:
  """x0 = recip * x - recipm1 * out from the network's output at x, clipped to [-1, 1] and
  projected onto the LR input if asked."""
  x0 = recip * x - recipm1 * out.astype(jnp.float32)
  if clip_x0:
    x0 = jnp.clip(x0, -1.0, 1.0)
  return x0 if project_x0 is None else project_x0(x0)


def _slots(num_steps: int, trajectory_every: int,
           record_steps: tuple[int, ...]) -> tuple[np.ndarray, int] | None:
  """The trajectory slot each step writes, (S,) int32, and the slot count; steps that keep
  nothing write to an extra slot past the end, which is dropped."""
  if trajectory_every and record_steps:
    raise ValueError('pass trajectory_every or record_steps, not both.')
  if trajectory_every > 0:
    count = -(-num_steps // trajectory_every)
    return np.arange(num_steps, dtype=np.int32) // trajectory_every, count
  if not record_steps:
    return None
  if (len(set(record_steps)) != len(record_steps)
      or not all(0 <= i < num_steps for i in record_steps)):
    raise ValueError(f'record_steps {record_steps}: distinct steps in [0, {num_steps}).')
  slots = np.full(num_steps, len(record_steps), np.int32)
  slots[list(record_steps)] = np.arange(len(record_steps))
  return slots, len(record_steps)


def run(eps_fn: EpsFn, x: jax.Array, keys: jax.Array, table: solvers.StepTable, *,
        clip_x0: bool, trajectory_every: int = 0, record_steps: tuple[int, ...] = (),
        project_x0: Callable[[jax.Array], jax.Array] | None = None,
        noise_sign: jax.Array | None = None,
        fresh_noise: bool = True) -> tuple[jax.Array, Trajectory | None]:
  """Runs every step of `table` on x (B, H, W, C), zeros to start from pure noise.

  keys (B,) give each example its own noise: every step draws one fresh z (x_T at step 0), so
  the program has a single sampling site whatever the sampler. `project_x0`, if given, maps
  each (clipped) predicted x0 onto the images consistent with the LR input. `noise_sign` (B,),
  if given, multiplies example b's every z (-1: the antithetic twin of the same key's path).
  `fresh_noise` = False (for a table whose noise is 0 after step 0: `solvers.is_deterministic`)
  draws x_T alone, with the same key and the same result: a deterministic sampler's steps then
  spend nothing on random numbers.
  Returns the final x (B, H, W, C) and, when `trajectory_every` > 0 or `record_steps` is given,
  the `Trajectory`.
  """
  num_steps = table.gamma.shape[0]
  plan = _slots(num_steps, trajectory_every, tuple(record_steps))
  traj, slot_of, count = None, np.zeros(num_steps, np.int32), 0
  if plan is not None:
    slot_of, count = plan
    traj = Trajectory(*(jnp.zeros((count + 1, *x.shape), jnp.float32) for _ in range(2)))

  def add_noise(x, keys, std):
    keys, step_keys = split_keys(keys)
    z = normal(step_keys, x.shape[1:])
    if noise_sign is not None:
      z = noise_sign[:, None, None, None] * z
    return x + std * z, keys

  if (not fresh_noise and not isinstance(table.noise, jax.core.Tracer)
      and not solvers.is_deterministic(table)):
    raise ValueError('fresh_noise=False drops the noise this table adds after x_T: pass '
                     'fresh_noise=True, or only for tables where solvers.is_deterministic holds.')
  x = x.astype(jnp.float32)
  if not fresh_noise:
    x, keys = add_noise(x, keys, table.noise[0])

  def step(carry, row_and_index):
    x, x0_prev, keys, traj = carry
    row, slot = row_and_index
    if fresh_noise:
      x, keys = add_noise(x, keys, row.noise)
    x0 = predicted_x0(x, eps_fn(x, jnp.full((x.shape[0],), row.gamma)), row.recip, row.recipm1,
                      clip_x0=clip_x0, project_x0=project_x0)
    if traj is not None:
      # With trajectory_every, a block's slot is rewritten on each of its steps: the last stays.
      traj = Trajectory(jax.lax.dynamic_update_index_in_dim(traj.x, x, slot, 0),
                        jax.lax.dynamic_update_index_in_dim(traj.x0, x0, slot, 0))
    return (row.a * x + row.b * x0 + row.c * x0_prev, x0, keys, traj), None

  init = (x, jnp.zeros(x.shape, jnp.float32), keys, traj)
  (x, _, _, traj), _ = jax.lax.scan(step, init, (table, jnp.asarray(slot_of)))
  if traj is not None:
    traj = Trajectory(traj.x[:count], traj.x0[:count])
  return x, traj
