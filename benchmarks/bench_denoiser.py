"""Time one denoiser call of the face model (LR 16 -> HR 128) after compilation.

  python benchmarks/bench_denoiser.py [--batches 1,4] [--repeats 5] [--dtype float32] \
      [--config CONFIG --lr 16 --hr 128] [--official_ms 525,2368]

Prints one JSON object: per batch the median and all timings in ms, XLA's FLOP counts for the
call (the model's, with direct convolutions, and the executed ones: fewer on CPU, where Winograd's
algorithm runs), the achieved model TFLOP/s and, given the official PyTorch code's times for the
same batches measured on this machine in the same session (../shared/anchors/official_pytorch/),
the ratio to them. Two variants are timed: the full forward (encoder + conditioning + U-Net, what
the official `denoise_fn` call costs) and `denoise` alone with the conditioning cached, which is
what each sampler step pays.
"""
import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
from flax import nnx

from model_flops import executed_flops
from model_flops import model_flops
from model_flops import significant

from idm_jax import host_memory
from idm_jax.config import loading
from idm_jax.config.model import default_model_config
from idm_jax.models.idm import IDM


def _time(fn, args, repeats: int) -> list[float]:
  jax.block_until_ready(fn(*args))  # Compile and warm up.
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append((time.perf_counter() - start) * 1e3)
  return times


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--batches', default='1,4')
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--dtype', default='float32', choices=('float32', 'bfloat16'))
  parser.add_argument('--config', help="experiment config whose model to time (default: the "
                      "face model); the suite passes a toy one")
  parser.add_argument('--lr', type=int, default=16, help='LR side')
  parser.add_argument('--hr', type=int, default=128, help='HR side')
  parser.add_argument('--official_ms', help="the official PyTorch call's milliseconds for each "
                      'of --batches, timed on this machine in the same session: gives the ratios')
  args = parser.parse_args()
  batches = [int(b) for b in args.batches.split(',')]
  try:
    official = [float(t) for t in args.official_ms.split(',')] if args.official_ms else []
  except ValueError:
    official = [0.0]
  if official and (len(official) != len(batches) or min(official) <= 0):
    parser.error(f'--official_ms needs one positive time per batch of --batches ({len(batches)}).')
  malloc_tuned = host_memory.keep_freed_memory()

  cfg = loading.load(args.config).model if args.config else default_model_config()
  cfg.compute_dtype = args.dtype
  model = IDM(cfg, rngs=nnx.Rngs(0))
  model.eval()
  graphdef, state = nnx.split(model)

  @jax.jit
  def full(state, lr, y_t, gamma, p):
    return nnx.merge(graphdef, state)(lr, y_t, gamma, p)

  @jax.jit
  def condition(state, lr, p):
    return nnx.merge(graphdef, state).condition(lr, (args.hr, args.hr), p)

  @jax.jit
  def denoise(state, cond, y_t, gamma):
    return nnx.merge(graphdef, state).denoise(cond, y_t, gamma)

  report = {'device': str(jax.devices()[0].device_kind), 'backend': jax.default_backend(),
            'dtype': args.dtype, 'malloc_tuned': malloc_tuned, 'lr': [args.lr, args.lr],
            'hr': [args.hr, args.hr], 'results': []}
  for i, batch in enumerate(batches):
    key = jax.random.key(batch)
    lr = jax.random.uniform(key, (batch, args.lr, args.lr, 3), minval=-1, maxval=1)
    y_t = jax.random.normal(key, (batch, args.hr, args.hr, 3))
    gamma, p = jnp.full((batch,), 0.5), jnp.full((batch,), 1.0)
    full_args = (state, lr, y_t, gamma, p)
    cond = condition(state, lr, p)
    step_args = (state, cond, y_t, gamma)
    entry = {'batch': batch}
    for name, fn, fn_args in (('full_call', full, full_args), ('cached_step', denoise, step_args)):
      times = _time(fn, fn_args, args.repeats)
      flops = model_flops(fn, *fn_args)
      executed = executed_flops(fn.lower(*fn_args).compile())
      median = statistics.median(times)
      entry[name] = {'median_ms': round(median, 2), 'times_ms': [round(t, 2) for t in times],
                     'model_gflop': significant(flops / 1e9),
                     'executed_gflop': None if executed is None else significant(executed / 1e9),
                     'tflops_per_s': significant(flops / median / 1e9)}
    if official:
      entry['official_ms'] = official[i]
      entry['ratio_full_to_official'] = round(entry['full_call']['median_ms'] / official[i], 3)
    report['results'].append(entry)
  print(json.dumps(report))


if __name__ == '__main__':
  main()
