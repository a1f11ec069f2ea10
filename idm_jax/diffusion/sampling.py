"""Public sampling entry points: one jitted program per (batch, output size, steps, tiling).

As in Flax's gemma sampler, the model is split once outside and merged inside a single `jax.jit`
over (graphdef, state, ...): the LR conditioning is computed once, then `scan_loop.run` scans the
steps (a distilled student: `student.run`). The step table (the student's plan) is a
traced argument, so another schedule of the same length reuses the program; whether steps draw
fresh noise (eta > 0) is static, so switching eta between 0 and > 0 compiles once more.
"""
import functools
from typing import Any, Callable, NamedTuple

from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from idm_jax.diffusion import consistency
from idm_jax.diffusion import scan_loop
from idm_jax.diffusion import schedules
from idm_jax.diffusion import solvers
from idm_jax.diffusion import student
from idm_jax.diffusion import tiling

@functools.partial(jax.jit, static_argnames=('out_hw', 'layout', 'cache_tile_condition', 'clip_x0',
                                             'trajectory_every', 'mean_of', 'antithetic',
                                             'fresh_noise'))
def _sample(graphdef: nnx.GraphDef, state: nnx.State, lr: jax.Array, p: jax.Array,
            keys: jax.Array, table: solvers.StepTable | student.Plan,
            projector: consistency.Projector | None,
            *, out_hw: tuple[int, int],
            layout: tiling.TileLayout | None, cache_tile_condition: bool, clip_x0: bool,
            trajectory_every: int, mean_of: int, antithetic: bool = False,
            fresh_noise: bool = True, noise_sign: jax.Array | None = None
            ) -> tuple[jax.Array, scan_loop.Trajectory | None]:
  """Samples from the per-example keys (B,); untiled when layout is None.

  With a projector, every step's x0 and the final image are projected onto the images whose
  degradation is `lr`: on the whole image, after the tiles' noise predictions are blended, so
  that the bicubic kernels that straddle tile edges see the pixels on both sides. With
  mean_of = k > 1, example b is the mean of k samples drawn from split(keys[b], k); with
  `antithetic` (k even), of k / 2 pairs, sample 2i + 1 drawn with the negated noise of sample 2i
  from split(keys[b], k / 2)[i].
  """
  if mean_of > 1:
    batch = lr.shape[0]
    draws = lambda x: jnp.repeat(x, mean_of, axis=0)
    if antithetic:
      keys = jax.vmap(lambda key: jax.random.split(key, mean_of // 2))(keys).reshape(-1)
      noise_sign = jnp.tile(jnp.array([1.0, -1.0]), batch * mean_of // 2)
      keys = jnp.repeat(keys, 2)
    else:
      keys = jax.vmap(lambda key: jax.random.split(key, mean_of))(keys).reshape(-1)
    images, _ = _sample(graphdef, state, draws(lr), draws(p), keys, table, projector,
                        out_hw=out_hw, layout=layout, cache_tile_condition=cache_tile_condition,
                        clip_x0=clip_x0, trajectory_every=0, mean_of=1, fresh_noise=fresh_noise,
                        noise_sign=noise_sign)
    return images.reshape(batch, mean_of, *images.shape[1:]).mean(axis=1), None
  model = nnx.merge(graphdef, state)
  model.eval()
  if layout is None:
    cond = model.condition(lr, out_hw, p)
    eps_fn = lambda x, gamma: model.denoise(cond, x, gamma)
  else:
    eps_fn = tiling.tiled_eps_fn(model, lr, p, layout, cache_tile_condition)
  project = None
  if projector is not None:
    project = lambda x0: consistency.project(projector, x0, lr)
  shape = (lr.shape[0], *out_hw, 3)
  if isinstance(table, student.Plan):
    return student.run(eps_fn, shape, keys, table, clip_x0=clip_x0, project_x0=project,
                               noise_sign=noise_sign), None
  x, traj = scan_loop.run(eps_fn, jnp.zeros(shape, jnp.float32), keys, table, clip_x0=clip_x0,
                          noise_sign=noise_sign, trajectory_every=trajectory_every,
                          project_x0=project, fresh_noise=fresh_noise)
  return (x if project is None else project(x)), traj


def _arguments(model: nnx.Module, lr: Any, out_hw: tuple[int, int], p: Any, keys: jax.Array,
               sampler: ml_collections.ConfigDict, diffusion: ml_collections.ConfigDict,
               tiled: bool | None, trajectory_every: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
  """The positional and static arguments of `_sample`; lr and p may be `jax.ShapeDtypeStruct`s."""
  out_hw = (int(out_hw[0]), int(out_hw[1]))
  schedule = schedules.make_schedule(diffusion, np.float64)
  distilled = sampler.name == 'distilled'
  if distilled and trajectory_every:
    raise ValueError(f'sampler.trajectory_every = {trajectory_every}: the distilled sampler keeps '
                     'no trajectory (its readings are of one estimate); pass 0.')
  table = (student.make_plan(schedule, sampler.steps) if distilled
           else solvers.make_table(sampler, schedule))
  if not isinstance(p, jax.ShapeDtypeStruct):
    p = jnp.asarray(p, jnp.float32)
  if sampler.consistency == 'auto':
    raise ValueError("sampler.consistency = 'auto' means the data's degradation: resolve it with "
                     'idm_jax.config.diffusion.resolve_sampler(config), or pass a method.')
  projector = consistency.make_projector(sampler.consistency, lr.shape[1:3], out_hw)
  graphdef, state = nnx.split(model)
  layout = tiling.layout_for(lr.shape[1:3], out_hw, sampler, tiled)
  if sampler.mean_of < 1 or (sampler.mean_of > 1 and trajectory_every):
    raise ValueError(f'sampler.mean_of = {sampler.mean_of}: pass >= 1, and 1 to keep trajectories.')
  if sampler.antithetic and sampler.mean_of > 1 and sampler.mean_of % 2:
    raise ValueError(f'sampler.antithetic needs pairs: sampler.mean_of = {sampler.mean_of} is odd; '
                     'pass an even mean_of, or antithetic = False.')
  static = dict(out_hw=out_hw, layout=layout,
                cache_tile_condition=layout is not None and bool(sampler.tile_cache_condition),
                clip_x0=bool(sampler.clip_x0), trajectory_every=int(trajectory_every),
                mean_of=int(sampler.mean_of),
                antithetic=bool(sampler.antithetic) and sampler.mean_of > 1,
                fresh_noise=not distilled and not solvers.is_deterministic(table))
  return (graphdef, state, lr, p, keys, table, projector), static


def _example_keys(key: jax.Array, batch: int) -> jax.Array:
  """(batch,) typed keys from one key (split) or `batch` keys, typed or legacy uint32."""
  if not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
    key = jax.random.wrap_key_data(key)  # A legacy uint32 `PRNGKey` (2,) or a stack of them.
  if key.shape == ():
    return jax.random.split(key, batch)
  if key.shape == (batch,):
    return key
  raise ValueError(f'sample: key of shape {key.shape} for a batch of {batch}; pass one key '
                   f'or {batch} keys (shape ({batch},)).')


def sample(model: nnx.Module, lr: jax.Array, out_hw: tuple[int, int], p: jax.Array,
           key: jax.Array, sampler: ml_collections.ConfigDict,
           diffusion: ml_collections.ConfigDict, tiled: bool | None = None) -> Any:
  """Super-resolves lr (B, h, w, 3) in [-1, 1] to (B, H, W, 3) at scale input p (B,).

  `sampler` / `diffusion` hold the fields of `default_sampler_config()` /
  `default_diffusion_config()`. `key`: one key, of which example b uses `split(key, B)[b]`, or B
  keys, one per example: example b's image then depends on keys[b] alone, not on the batch it
  was drawn in. `tiled`: as `tiling.layout_for` (None: when the output exceeds
  `sampler.tile_size`). Returns
  the images, or (images, `scan_loop.Trajectory`) when `sampler.trajectory_every` > 0. Dropout
  is off.
  """
  args, static = _arguments(model, lr, out_hw, p, _example_keys(key, lr.shape[0]), sampler,
                            diffusion, tiled, sampler.trajectory_every)
  images, traj = _sample(*args, **static)
  return images if traj is None else (images, traj)


def lower(model: nnx.Module, lr: jax.Array, out_hw: tuple[int, int], p: jax.Array,
          key: jax.Array, sampler: ml_collections.ConfigDict,
          diffusion: ml_collections.ConfigDict, tiled: bool | None = None) -> jax.stages.Lowered:
  """The program `sample` runs for these arguments, lowered; `.compile()` it ahead of a call."""
  args, static = _arguments(model, lr, out_hw, p, _example_keys(key, lr.shape[0]), sampler,
                            diffusion, tiled, sampler.trajectory_every)
  return _sample.lower(*args, **static)


class CompiledSampler(NamedTuple):
  """`sample` compiled ahead of time for one (batch, LR size, output size, sampler)."""
  run: Callable[[jax.Array, jax.Array, jax.Array], Any]  # (lr, p, key) -> as `sample`.
  compiled: jax.stages.Compiled  # For .memory_analysis() and .cost_analysis().


def compile_sample(model: nnx.Module, lr: Any, out_hw: tuple[int, int], p: Any,
                   sampler: ml_collections.ConfigDict, diffusion: ml_collections.ConfigDict,
                   tiled: bool | None = None) -> CompiledSampler:
  """Compiles the program `sample` runs, with the model's current weights; lr (B, h, w, 3) and
  p (B,) may be arrays or `jax.ShapeDtypeStruct`s."""
  batch = lr.shape[0]
  keys = jax.eval_shape(lambda: jax.random.split(jax.random.key(0), batch))
  args, static = _arguments(model, lr, out_hw, p, keys, sampler, diffusion, tiled,
                            sampler.trajectory_every)
  compiled = _sample.lower(*args, **static).compile()
  graphdef, state, _, _, _, table, projector = args

  def run(lr, p, key):
    images, traj = compiled(graphdef, state, lr, jnp.asarray(p, jnp.float32),
                            jax.random.split(key, batch), table, projector)
    return images if traj is None else (images, traj)

  return CompiledSampler(run, compiled)
