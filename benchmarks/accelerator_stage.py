r"""One stage of the accelerator check, run by `accelerator_check.py` in its own process.

  python benchmarks/accelerator_stage.py STAGE [--cpu_smoke] [--fixture F] [--limit_s S]

Prints one JSON line when the stage ends. `--limit_s`: a few seconds before it, every thread's
stack is printed to stderr and the process exits, so a stage that hangs (a compile, an autotuner)
still says where it was. Needs jax, flax, optax, orbax-checkpoint, ml-collections, numpy, scipy,
Pillow and etils (all but ml-collections on the GPU image): nothing here imports TensorFlow, clu
or grain.
"""
import argparse
import faulthandler
import importlib.metadata
import json
import pathlib
import re
import statistics
import sys
import time

import jax
import jax.numpy as jnp

import bench_sampling
import bench_train

from idm_jax import compilation_cache
from idm_jax import host_memory
from idm_jax.config import diffusion as diffusion_config
from idm_jax.config import loading
from idm_jax.diffusion import sampling
from idm_jax.scale import scale_to_p
from idm_jax.tools import check_official

ROOT = pathlib.Path(__file__).resolve().parents[1]
FACE_CONFIG = ROOT / 'configs' / 'ffhq_16_128.py'
MICRO_CONFIG = ROOT / 'tests' / 'training' / 'micro_config.py'
PACKAGES = ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'ml-collections', 'numpy')
# In optimised HLO: a Winograd F(4x4, 3x3) tile tensor (36 transformed values per tile), a
# conditional (the CPU paths' platform switch), and convolutions with their result type.
_WINOGRAD_TENSOR = re.compile(r'\b(?:f32|bf16|f16)\[36,')
_CONDITIONAL = re.compile(r'\bconditional\(')
# A convolution's result type: XLA's own op (CPU, TPU) or a cuDNN call (GPU, tuple-typed).
_CONVOLUTION = re.compile(r' = \(?(bf16|f32|f16)\[[^=]*? (?:convolution\(|custom-call\(.*'
                          r'custom_call_target="__cudnn\$conv)')


def _median_seconds(fn, repeats: int) -> tuple[float, list[float]]:
  jax.block_until_ready(fn())  # Warm-up.
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return statistics.median(times), times


def versions(args) -> dict:
  del args
  device = jax.devices()[0]
  found = {}
  for name in PACKAGES:
    try:
      found[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      found[name] = None
  return {'packages': found, 'backend': jax.default_backend(), 'device': device.device_kind,
          'devices': jax.device_count(), 'processes': jax.process_count()}


def peaks(args) -> dict:
  """Measured TFLOP/s: a large bfloat16 and float32 (default precision: TF32 on NVIDIA) matrix
  product, and one convolution shaped like the face model's widest 3x3 layer."""
  n = 256 if args.cpu_smoke else 8192
  out = {}
  for name, dtype in (('matmul_bf16', jnp.bfloat16), ('matmul_f32_default', jnp.float32)):
    a = jnp.ones((n, n), dtype)
    fn = jax.jit(lambda a: a @ a)
    median, _ = _median_seconds(lambda: fn(a), 5)
    out[name] = {'n': n, 'tflops': round(2 * n**3 / median / 1e12, 2)}
  b, side, c = (2, 16, 16) if args.cpu_smoke else (32, 128, 128)
  for name, dtype in (('conv3x3_bf16', jnp.bfloat16), ('conv3x3_f32_default', jnp.float32)):
    x, k = jnp.ones((b, side, side, c), dtype), jnp.ones((3, 3, c, c), dtype)
    fn = jax.jit(lambda x, k: jax.lax.conv_general_dilated(
        x, k, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')))
    median, _ = _median_seconds(lambda: fn(x, k), 5)
    out[name] = {'shape': [b, side, side, c], 'tflops': round(
        2 * b * side * side * c * c * 9 / median / 1e12, 2)}
  return out


def parity(args) -> dict:
  """The contract (float32 at 'highest', every case, judged); the errors at the device's
  default precision and in bfloat16 (first case, reported)."""
  out = {}
  first = (0,)
  for name, dtype, precision, cases in (
      ('highest', 'float32', 'highest', first if args.cpu_smoke else None),
      ('default', 'float32', 'default', first),
      ('bfloat16', 'bfloat16', 'default', first)):
    start = time.perf_counter()
    results = check_official.check(args.fixture, cases, compute_dtype=dtype,
                                   matmul_precision=precision)
    out[name] = {'cases': len(results), 'seconds': round(time.perf_counter() - start, 1),
                 'eps_rel_l2_max': max(r['eps']['rel_l2'] for r in results),
                 'x_con_rel_l2_max': max(r['x_con']['rel_l2'] for r in results)}
    if name == 'highest':  # The contract, judged as the checker judges it.
      out[name]['pass'] = all(check_official.passes(r) for r in results)
  return out


def _model(args, dtype: str):
  config = loading.load(str(MICRO_CONFIG if args.cpu_smoke else FACE_CONFIG))
  config.model.compute_dtype = dtype
  if args.cpu_smoke:
    from flax import nnx  # pylint: disable=g-import-not-at-top
    from idm_jax.models.idm import IDM  # pylint: disable=g-import-not-at-top
    return IDM(config.model, rngs=nnx.Rngs(0)), config
  return bench_sampling.face_model(config.model), config


def _sample(args, dtype: str, name: str, steps: int) -> dict:
  model, config = _model(args, dtype)
  batch, lr_hw, out_hw = (2, (8, 8), (16, 16)) if args.cpu_smoke else (64, (16, 16), (128, 128))
  sampler = diffusion_config.default_sampler_config()
  sampler.name, sampler.steps, sampler.consistency = name, steps, 'matlab_bicubic'
  lr = jnp.zeros((batch, *lr_hw, 3), jnp.float32)
  p = jnp.full((batch,), scale_to_p(out_hw[0] / lr_hw[0], config.model.max_scale), jnp.float32)
  start = time.perf_counter()
  compiled = sampling.compile_sample(model, lr, out_hw, p, sampler, config.diffusion)
  compile_s = time.perf_counter() - start
  median, times = _median_seconds(lambda: compiled.run(lr, p, jax.random.key(0)), 3)
  return {'sampler': name, 'evaluations': steps, 'compute_dtype': dtype, 'batch': batch,
          'lr_hw': list(lr_hw), 'out_hw': list(out_hw), 'compile_s': round(compile_s, 2),
          'run_s_median': round(median, 4), 'run_s_all': [round(t, 4) for t in times],
          'images_per_s': round(batch / median, 1),
          'ms_per_evaluation': round(median / steps * 1e3, 3)}


def sample_bf16(args) -> dict:
  return _sample(args, 'bfloat16', 'dpm_solver++', 20)


def sample_f32(args) -> dict:
  return _sample(args, 'float32', 'dpm_solver++', 20)


def sample_student(args) -> dict:
  """The distilled student's sampler at 4 network evaluations (seeded weights: speed only)."""
  return _sample(args, 'bfloat16', 'distilled', 4)


def audit(hlo: str) -> dict:
  """What the optimised program holds: CPU-path tensors and conditionals (there should be none
  on an accelerator), and convolutions by result type."""
  kinds = [m.group(1) for line in hlo.splitlines() if (m := _CONVOLUTION.search(line))]
  return {'winograd_tensors': len(_WINOGRAD_TENSOR.findall(hlo)),
          'conditionals': len(_CONDITIONAL.findall(hlo)),
          'convolutions': {t: kinds.count(t) for t in sorted(set(kinds))}}


def _train(args, dtype: str) -> dict:
  config = loading.load(str(MICRO_CONFIG if args.cpu_smoke else FACE_CONFIG))
  config.model.compute_dtype = dtype
  config.mesh.data = -1
  per_device, lr_size, hr_size, steps = (1, 8, 16, 2) if args.cpu_smoke else (32, 16, 128, 5)
  result, compiled = bench_train.measure(config, per_device * jax.device_count(), lr_size,
                                         hr_size, steps, args.peak_tflops)
  result['hlo'] = audit(compiled.as_text())
  return result


def train_bf16(args) -> dict:
  return _train(args, 'bfloat16')


def train_f32(args) -> dict:
  return _train(args, 'float32')


STAGES = {f.__name__: f for f in (versions, peaks, parity, sample_bf16, sample_f32,
                                   sample_student, train_bf16, train_f32)}


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('stage', choices=list(STAGES))
  parser.add_argument('--cpu_smoke', action='store_true')
  parser.add_argument('--fixture', required=True, help='official-network fixture (.npz)')
  parser.add_argument('--peak_tflops', type=float, default=0.0,
                      help='for the train stages: the device peak MFU is quoted against')
  parser.add_argument('--limit_s', type=float, default=0.0)
  args = parser.parse_args(argv)
  host_memory.keep_freed_memory()
  compilation_cache.enable()
  if args.limit_s:
    faulthandler.dump_traceback_later(max(args.limit_s - 5, 1), exit=True)
  start = time.perf_counter()
  result = STAGES[args.stage](args)
  print(json.dumps({'stage': args.stage, 'status': 'ok',
                    'seconds': round(time.perf_counter() - start, 1), **result}), flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
