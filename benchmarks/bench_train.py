r"""Train-step time of the official face model (99.8M parameters) at batch 4, LR 16 -> HR 128.

The target is at most 0.7x the official PyTorch step timed on the same machine in the same
session (`--official_s`; 14.8 s on the 2-core Zen 3 the README names). Reports the seconds of
each phase of building the step (initialiser, trace, lower, compile, FLOP count, first call),
the median of `--steps` steps after that (each timed to completion), XLA's memory plan and the
device's peak, and the FLOPs of one step (the model's, with direct convolutions, counted from
the traced program, and XLA's count of the executed ones: fewer on CPU, where Winograd's
algorithm runs); with `--peak_tflops` (the
device's peak for the compute dtype) also the model FLOP utilisation.

  python benchmarks/bench_train.py [--batch 4] [--steps 5] [--compute_dtype bfloat16]

Prints one JSON object.
"""
import argparse
import json
import pathlib
import statistics
import time

import jax
import numpy as np

from model_flops import executed_flops
from model_flops import model_flops
from model_flops import significant

from idm_jax import host_memory
from idm_jax import mesh as mesh_lib
from idm_jax.config import loading
from idm_jax.training import objectives
from idm_jax.training import optimizer
from idm_jax.training import train_state as train_state_lib
from idm_jax.training import train_step as train_step_lib

TARGET_RATIO = 0.7
FACE_CONFIG = pathlib.Path(__file__).resolve().parents[1] / 'configs' / 'ffhq_16_128.py'


def _seconds(start: float) -> float:
  return round(time.perf_counter() - start, 2)


def measure(config, batch_size: int, lr_size: int, hr_size: int, steps: int,
            peak_tflops: float = 0.0) -> tuple[dict, jax.stages.Compiled]:
  """Where the time goes in building `config`'s train step on its mesh at `batch_size` (global):
  parameter initialiser, trace, lower, compile, the FLOP
  count and the first call; then the median step time. Returns them and the compiled step."""
  config.train.batch_size = batch_size
  phases = {}
  mesh = mesh_lib.make_mesh(config.mesh)
  tx, schedule = optimizer.make_optimizer(config.optim, config.train.num_steps)
  start = time.perf_counter()
  layout = train_state_lib.make_layout(config, mesh, tx)
  phases['layout_s'] = _seconds(start)
  start = time.perf_counter()
  state = jax.block_until_ready(train_state_lib.create(config, layout, tx))
  phases['init_s'] = _seconds(start)
  step = train_step_lib.TrainStep(layout, tx, schedule, config.train, mesh,
                                  objectives.make_objective(config, layout.graphdef))

  rng = np.random.default_rng(0)
  b, h, w = batch_size, lr_size, hr_size
  batch = mesh_lib.global_batch(
      {'lr': rng.uniform(-1, 1, (b, h, h, 3)).astype(np.float32),
       'hr': rng.uniform(-1, 1, (b, w, w, 3)).astype(np.float32),
       'p': np.ones((b,), np.float32)}, mesh_lib.batch_sharding(mesh))

  start = time.perf_counter()
  traced = step.trace(state, batch)
  phases['trace_s'] = _seconds(start)
  start = time.perf_counter()
  lowered = traced.lower()
  phases['lower_s'] = _seconds(start)
  start = time.perf_counter()
  compiled = lowered.compile()
  phases['compile_s'] = _seconds(start)
  start = time.perf_counter()
  flops = model_flops(step, state, batch)
  phases['flop_count_s'] = _seconds(start)
  executed = executed_flops(compiled) or 0.0

  start = time.perf_counter()
  state, metrics = step(state, batch)  # Reuses the compilation; allocates.
  jax.block_until_ready(state)
  phases['first_call_s'] = _seconds(start)
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    state, metrics = step(state, batch)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - start)
  median = statistics.median(times)
  memory = compiled.memory_analysis()
  device_stats = jax.devices()[0].memory_stats() or {}
  result = {
      'params': int(sum(x.size for x in jax.tree.leaves(state.params))),
      'batch': b, 'lr_size': h, 'hr_size': w, 'compute_dtype': config.model.compute_dtype,
      'matmul_precision': config.model.matmul_precision,
      'backend': jax.default_backend(), 'device': jax.devices()[0].device_kind,
      'devices': mesh.size, 'phases': phases, 'compile_s': phases['compile_s'],
      'step_s_median': round(median, 4), 'step_s_all': [round(t, 4) for t in times],
      'images_per_s': round(b / median, 2), 'loss': float(metrics['loss']),
      'model_tflop_per_step': significant(flops / 1e12),
      'executed_tflop_per_step': significant(executed / 1e12),
      'achieved_tflops': significant(flops / median / 1e12),
      'xla_memory_gib': None if memory is None else {
          name: round(getattr(memory, f'{name}_size_in_bytes') / 2**30, 3)
          for name in ('argument', 'output', 'temp', 'generated_code')},
      'peak_gib': (round(device_stats['peak_bytes_in_use'] / 2**30, 3)
                   if 'peak_bytes_in_use' in device_stats else None),
  }
  if peak_tflops:
    result['peak_tflops'] = peak_tflops
    result['mfu'] = significant(flops / median / 1e12 / peak_tflops / mesh.size)
  return result, compiled


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--config', default=str(FACE_CONFIG),
                      help='experiment config (default: the face model); the suite passes a '
                      'toy one')
  parser.add_argument('--batch', type=int, default=4)
  parser.add_argument('--lr_size', type=int, default=16)
  parser.add_argument('--hr_size', type=int, default=128)
  parser.add_argument('--steps', type=int, default=5, help='timed steps after compilation')
  parser.add_argument('--compute_dtype', default='float32', choices=['float32', 'bfloat16'])
  parser.add_argument('--official_s', type=float, default=0.0,
                      help="the official PyTorch step's seconds, timed on this machine in the "
                      'same session (../shared/anchors/official_pytorch/): gives the ratio')
  parser.add_argument('--peak_tflops', type=float, default=0.0,
                      help='device peak TFLOP/s, for the model FLOP utilisation')
  args = parser.parse_args()
  malloc_tuned = host_memory.keep_freed_memory()

  config = loading.load(args.config)
  config.model.compute_dtype = args.compute_dtype
  config.mesh.data = 1
  result = {'benchmark': 'train_step', 'config': args.config,
            'malloc_tuned': malloc_tuned,
            **measure(config, args.batch, args.lr_size, args.hr_size, args.steps,
                      args.peak_tflops)[0]}
  median = result['step_s_median']
  if args.official_s:
    result['official_pytorch_s'] = args.official_s
    result['ratio_to_official'] = round(median / args.official_s, 3)
    result['target_ratio'] = TARGET_RATIO
    result['meets_target'] = median / args.official_s <= TARGET_RATIO
  print(json.dumps(result, indent=2))


if __name__ == '__main__':
  main()
