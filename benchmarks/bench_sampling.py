"""Sampling speed and tiled memory of the face model (LR 16 -> HR 128); prints JSON.

Every sampler runs the same compiled step (only its coefficient table differs), so a run of S
steps costs `fixed + S * per_step`. Short runs are timed (compilation excluded) and long ones
extrapolated from that fit; the JSON says which. Weights are seeded random: timings do not depend
on their values. Usage: python benchmarks/bench_sampling.py [--quick]
[--config CONFIG --lr 16 --hr 128 --memory_sizes 512,1024] (the suite passes a toy config).
"""
import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from idm_jax import host_memory
from idm_jax.config import diffusion as diffusion_config
from idm_jax.config import loading
from idm_jax.config.model import default_model_config
from idm_jax.diffusion import sampling
from idm_jax.diffusion import tiling
from idm_jax.models.idm import IDM
from idm_jax.scale import scale_to_p

LR_HW, OUT_HW = (16, 16), (128, 128)
SAMPLERS = {'ddpm_2000': ('ddpm', 2000), 'ddim_200': ('ddim', 200), 'ddim_50': ('ddim', 50),
            'dpm_solver++_20': ('dpm_solver++', 20)}


def face_model(config=None) -> IDM:
  """The face-config IDM (or `config`'s network) with fan-in-scaled seeded weights (skips the
  slow eager initialiser)."""
  config = default_model_config() if config is None else config
  graphdef, state = nnx.split(nnx.eval_shape(lambda: IDM(config, rngs=nnx.Rngs(0))))
  rng = np.random.default_rng(0)

  def fill(x):
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):  # Dropout's RNG stream.
      return jnp.broadcast_to(jax.random.key(0), x.shape)
    if not jnp.issubdtype(x.dtype, jnp.floating):
      return jnp.zeros(x.shape, x.dtype)
    fan_in = np.prod(x.shape[:-1]) if x.ndim > 1 else 100.0
    return jnp.asarray(rng.standard_normal(x.shape) / np.sqrt(fan_in), x.dtype)

  return nnx.merge(graphdef, jax.tree.map(fill, state))


def _sampler(name: str, steps: int):
  s = diffusion_config.default_sampler_config()
  s.name, s.steps, s.consistency = name, steps, 'none'
  return s


def _inputs(model, batch: int, lr_hw, out_hw):
  lr = jnp.zeros((batch, *lr_hw, 3), jnp.float32)
  p = jnp.full((batch,), scale_to_p(out_hw[0] / lr_hw[0], model.config.max_scale), jnp.float32)
  return lr, p


def _best_of(fn, repeats: int) -> float:
  """Fastest wall time of `repeats` runs of fn() (the machine may be shared)."""
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return min(times)


def time_network(model, batch: int, lr_hw=LR_HW, out_hw=OUT_HW) -> dict:
  """One full forward (condition + denoise) against one denoise on cached conditioning."""
  graphdef, state = nnx.split(model)
  lr, p = _inputs(model, batch, lr_hw, out_hw)
  y, gamma = jnp.zeros((batch, *out_hw, 3)), jnp.full((batch,), 0.5)

  @jax.jit
  def full(state, lr, y, gamma, p):
    net = nnx.merge(graphdef, state)
    net.eval()
    return net(lr, y, gamma, p)

  @jax.jit
  def condition(state, lr, p):
    net = nnx.merge(graphdef, state)
    net.eval()
    return net.condition(lr, out_hw, p)

  @jax.jit
  def denoise(state, cond, y, gamma):
    net = nnx.merge(graphdef, state)
    net.eval()
    return net.denoise(cond, y, gamma)

  cond = jax.block_until_ready(condition(state, lr, p))
  jax.block_until_ready((full(state, lr, y, gamma, p), denoise(state, cond, y, gamma)))
  return {'full_forward_s': round(_best_of(lambda: full(state, lr, y, gamma, p), 2), 3),
          'condition_s': round(_best_of(lambda: condition(state, lr, p), 2), 3),
          'denoise_s': round(_best_of(lambda: denoise(state, cond, y, gamma), 2), 3)}


def time_sampler(model, batch: int, steps: int, lr_hw=LR_HW, out_hw=OUT_HW) -> dict:
  """Compile time and run time of `steps` sampler steps (any sampler: the same program)."""
  lr, p = _inputs(model, batch, lr_hw, out_hw)
  start = time.perf_counter()
  compiled = sampling.compile_sample(model, lr, out_hw, p, _sampler('dpm_solver++', steps),
                                     diffusion_config.default_diffusion_config())
  compile_s = time.perf_counter() - start
  run_s = _best_of(lambda: compiled.run(lr, p, jax.random.key(1)), 1)
  return {'steps': steps, 'compile_s': round(compile_s, 1), 'run_s': round(run_s, 3)}


def sampler_table(model, batch: int, timed_steps: tuple[int, int], lr_hw=LR_HW,
                  out_hw=OUT_HW) -> dict:
  """Seconds per image of each sampler at one batch size, from two timed step counts."""
  lo, hi = (time_sampler(model, batch, s, lr_hw, out_hw) for s in timed_steps)
  per_step = (hi['run_s'] - lo['run_s']) / (hi['steps'] - lo['steps'])
  fixed = lo['run_s'] - lo['steps'] * per_step
  measured = {lo['steps']: lo['run_s'], hi['steps']: hi['run_s']}
  table = {'timed_runs': [lo, hi], 'per_step_s': round(per_step, 3), 'fixed_s': round(fixed, 3)}
  for label, (_, steps) in SAMPLERS.items():
    seconds = measured.get(steps, fixed + steps * per_step)
    table[label] = {'s_per_image': round(seconds / batch, 2),
                    'how': 'measured' if steps in measured else
                           f'extrapolated: fixed + {steps} x per_step'}
  return table


def sampling_memory(model, out: int, tiled: bool, cache_condition: bool = False,
                    scale: int = 8) -> dict:
  """XLA's memory plan of 20-step sampling of one (out x out) image at `scale`."""
  lr = jax.ShapeDtypeStruct((1, out // scale, out // scale, 3), jnp.float32)
  p = jax.ShapeDtypeStruct((1,), jnp.float32)
  sampler = _sampler('dpm_solver++', 20)
  sampler.tile_cache_condition = cache_condition
  start = time.perf_counter()
  stats = sampling.compile_sample(model, lr, (out, out), p, sampler,
                                  diffusion_config.default_diffusion_config(),
                                  tiled=tiled).compiled.memory_analysis()
  mib = lambda b: round(b / 2**20, 1)
  entry = {'tiled': tiled}
  if tiled:
    layout = tiling.plan_tiles((out // scale,) * 2, (out, out), sampler.tile_size,
                               sampler.tile_overlap, sampler.tile_multiple)
    entry.update(tiles=layout.num_tiles, tile_hw=layout.tile_hw, overlap=layout.overlap,
                 cache_condition=cache_condition)
  entry.update(temp_mib=mib(stats.temp_size_in_bytes),
               arguments_mib=mib(stats.argument_size_in_bytes),
               output_mib=mib(stats.output_size_in_bytes),
               peak_mib=mib(stats.temp_size_in_bytes + stats.argument_size_in_bytes +
                            stats.output_size_in_bytes),
               compile_s=round(time.perf_counter() - start, 1))
  return entry


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--quick', action='store_true',
                      help='batch 1 only; memory of the default tiling only')
  parser.add_argument('--config', help="experiment config whose model to time (default: the "
                      "face model)")
  parser.add_argument('--lr', type=int, default=LR_HW[0], help='LR side')
  parser.add_argument('--hr', type=int, default=OUT_HW[0], help='output side')
  parser.add_argument('--memory_sizes', default='512,1024',
                      help='output sides of the memory plans (at the model\'s max scale)')
  args = parser.parse_args()
  malloc_tuned = host_memory.keep_freed_memory()
  model = face_model(loading.load(args.config).model if args.config else None)
  lr_hw, out_hw = (args.lr, args.lr), (args.hr, args.hr)
  report = {
      'backend': jax.default_backend(), 'device': str(jax.devices()[0]),
      'cpu': platform.processor() or platform.machine(), 'cpu_count': os.cpu_count(),
      'load_average_at_start': os.getloadavg(), 'jax': jax.__version__,
      'malloc_tuned': malloc_tuned,
      'task': f'{args.config or "face config"}, LR {args.lr} -> HR {args.hr}, random weights, '
              'float32',
      'note': 'every sampler compiles to the same step; long runs are fixed + steps x per_step '
              'from two timed runs; compile time excluded from run times',
  }
  batches = {1: (4, 20)} if args.quick else {1: (4, 20), 8: (2, 4)}
  for batch, timed_steps in batches.items():
    entry = time_network(model, batch, lr_hw, out_hw)
    entry.update(sampler_table(model, batch, timed_steps, lr_hw, out_hw))
    entry['per_step_over_full_forward'] = round(entry['per_step_s'] / entry['full_forward_s'], 3)
    report[f'batch_{batch}'] = entry
  if not args.config:
    report['target_dpm_solver++_20_s_per_image_lt_25'] = (
        report['batch_1']['dpm_solver++_20']['s_per_image'] < 25)
  plans = [(True, False)] if args.quick else [(True, False), (True, True), (False, False)]
  scale = int(model.config.max_scale)
  report['memory'] = {f'{out}x{out}': [sampling_memory(model, out, *plan, scale=scale)
                                       for plan in plans]
                      for out in (int(v) for v in args.memory_sizes.split(','))}
  report['load_average_at_end'] = os.getloadavg()
  print(json.dumps(report, indent=2))


if __name__ == '__main__':
  main()
