r"""Every accelerator check in one run (under 8 minutes on one H100/H200); prints one JSON object.

  (a) parity: the official-network fixture in float32 at 'highest' matmul precision (the
      contract), and the errors at the device's default precision (TF32 on NVIDIA) and bfloat16;
  (b) the face-config train step (99.8M parameters, 16 -> 128) at 32 images per device, float32
      and bfloat16: step time, TFLOP/s and model FLOP utilisation against the card's peak;
  (c) DPM-Solver++ 20-step sampling of 16 -> 128 at batch 64, projection included;
  (d) the CPU-only convolutions (Winograd, im2col) are compiled out: XLA executes the model's
      own FLOPs and no Winograd tile tensor ([36, ...]) is in the optimised program.

  benchmarks/accelerator_check.sh [--cpu-smoke] [--output FILE] [--peak-bf16 T --peak-f32 T]

--cpu-smoke runs the same code on the training tests' micro model at toy sizes and on one parity
case (the suite runs it: tests/training/test_benchmarks.py): it checks the script, not the speed.
Exit status 1 when a check fails.
"""
import argparse
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

from idm_jax.config import diffusion as diffusion_config
from idm_jax.config import loading
from idm_jax.diffusion import sampling
from idm_jax.scale import scale_to_p
from idm_jax.tools import check_official

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURE = ROOT.parent / 'shared' / 'reference' / 'idm_official_small.npz'
# Dense peak TFLOP/s (bfloat16, TF32 for float32 matmuls) by device-kind substring; first match.
PEAKS = (('H200', 989.4, 494.7), ('H100 PCIe', 756.0, 378.0), ('H100', 989.4, 494.7),
         ('A100', 312.0, 156.0))
# A Winograd F(4x4, 3x3) tile tensor in optimised HLO: 36 transformed values per tile.
_WINOGRAD_TENSOR = re.compile(r'\b(?:f32|bf16|f16)\[36,')


def _peaks(args: argparse.Namespace) -> tuple[float, float]:
  kind = jax.devices()[0].device_kind
  for name, bf16, f32 in PEAKS:
    if name in kind:
      return args.peak_bf16 or bf16, args.peak_f32 or f32
  return args.peak_bf16, args.peak_f32


def parity(fixture: pathlib.Path, cases: tuple[int, ...] | None) -> dict:
  """The contract (float32 at 'highest', judged) and the error of bfloat16 and of the device's
  default matmul precision (TF32 on NVIDIA GPUs), reported."""
  out = {}
  for name, dtype, precision in (('float32', 'float32', 'highest'),
                                 ('float32_default_precision', 'float32', 'default'),
                                 ('bfloat16', 'bfloat16', 'default')):
    results = check_official.check(str(fixture), cases, compute_dtype=dtype,
                                   matmul_precision=precision)
    out[name] = {'cases': len(results),
                  'eps_rel_l2_max': max(r['eps']['rel_l2'] for r in results),
                  'eps_max_abs': max(r['eps']['max_abs'] for r in results),
                  'x_con_rel_l2_max': max(r['x_con']['rel_l2'] for r in results)}
    if name == 'float32':  # The contract; the others are reported, not judged.
      out[name]['pass'] = all(check_official.passes(r) for r in results)
  return out


def train_steps(config_path: pathlib.Path, per_device: int, lr_size: int, hr_size: int,
                steps: int, peaks: tuple[float, float]) -> tuple[dict, list[str]]:
  """Timings per compute dtype, and the optimised programs (HLO text) that ran."""
  out, programs = {}, []
  for dtype, peak in (('float32', peaks[1]), ('bfloat16', peaks[0])):
    config = loading.load(str(config_path))
    config.model.compute_dtype = dtype
    config.mesh.data = -1
    out[dtype], compiled = bench_train.measure(config, per_device * jax.device_count(), lr_size,
                                               hr_size, steps, peak)
    programs.append(compiled.as_text())
  return out, programs


def sample_timing(model, batch: int, lr_hw: tuple[int, int], out_hw: tuple[int, int],
                  max_scale: float, repeats: int) -> dict:
  sampler = diffusion_config.default_sampler_config()
  sampler.consistency = 'matlab_bicubic'
  lr = jnp.zeros((batch, *lr_hw, 3), jnp.float32)
  p = jnp.full((batch,), scale_to_p(out_hw[0] / lr_hw[0], max_scale), jnp.float32)
  start = time.perf_counter()
  compiled = sampling.compile_sample(model, lr, out_hw, p, sampler,
                                     diffusion_config.default_diffusion_config())
  compile_s = time.perf_counter() - start
  jax.block_until_ready(compiled.run(lr, p, jax.random.key(0)))
  times = []
  for i in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(compiled.run(lr, p, jax.random.key(i)))
    times.append(time.perf_counter() - start)
  median = statistics.median(times)
  return {'sampler': 'dpm_solver++', 'steps': sampler.steps, 'batch': batch,
          'lr_hw': list(lr_hw), 'out_hw': list(out_hw), 'compile_s': round(compile_s, 2),
          'run_s_median': round(median, 4), 'images_per_s': round(batch / median, 2),
          'ms_per_image_step': round(median / batch / sampler.steps * 1e3, 4)}


def cpu_paths_compiled_out(train: dict, hlo_texts: list[str]) -> dict:
  """No Winograd tile tensor in the program; executed over model FLOPs (~1 without Winograd's
  saving) is reported beside it."""
  ratios = {dtype: r['executed_tflop_per_step'] / max(r['model_tflop_per_step'], 1e-12)
            for dtype, r in train.items()}
  winograd = any(_WINOGRAD_TENSOR.search(text) for text in hlo_texts)
  return {'executed_over_model_flops': {k: round(v, 3) for k, v in ratios.items()},
          'winograd_tensor_in_hlo': winograd,
          'pass': not winograd}


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--cpu-smoke', action='store_true',
                      help="toy sizes on the training tests' micro model and one parity case: "
                      'checks the script runs, on any device (the suite runs it)')
  parser.add_argument('--output', help='also write the JSON here')
  parser.add_argument('--fixture', default=str(FIXTURE), help='official-network fixture (.npz)')
  parser.add_argument('--peak-bf16', type=float, default=0.0,
                      help='peak bfloat16 TFLOP/s of one device (default: known cards)')
  parser.add_argument('--peak-f32', type=float, default=0.0,
                      help='peak float32 (TF32) TFLOP/s of one device (default: known cards)')
  args = parser.parse_args()
  if args.cpu_smoke:
    config_path = ROOT / 'tests' / 'training' / 'micro_config.py'
    per_device, sizes, steps, cases = 1, (8, 16), 2, (0,)
    sample_args = dict(batch=2, lr_hw=(8, 8), out_hw=(16, 16), max_scale=2.0, repeats=2)
    model = None
  else:
    config_path, per_device, sizes, steps = ROOT / 'configs' / 'ffhq_16_128.py', 32, (16, 128), 5
    sample_args = dict(batch=64, lr_hw=(16, 16), out_hw=(128, 128), max_scale=8.0, repeats=3)
    cases = None
    model = bench_sampling.face_model()
  device = jax.devices()[0]
  report = {'device': device.device_kind, 'platform': device.platform,
            'devices': jax.device_count(), 'jax': jax.__version__, 'cpu_smoke': args.cpu_smoke}
  peaks = _peaks(args)
  report['peak_tflops'] = {'bfloat16': peaks[0], 'float32': peaks[1]}

  start = time.perf_counter()
  report['parity'] = parity(pathlib.Path(args.fixture), cases)
  report['train_step'], programs = train_steps(config_path, per_device, *sizes, steps, peaks)
  if model is None:
    from idm_jax.models.idm import IDM  # pylint: disable=g-import-not-at-top
    from flax import nnx  # pylint: disable=g-import-not-at-top
    model = IDM(loading.load(str(config_path)).model, rngs=nnx.Rngs(0))
  report['sampling'] = sample_timing(model, **sample_args)
  cpu_paths = cpu_paths_compiled_out(report['train_step'], programs)
  if device.platform == 'cpu':
    cpu_paths['pass'] = None  # On a CPU the fast paths are meant to run.
  report['cpu_paths_compiled_out'] = cpu_paths
  report['seconds'] = round(time.perf_counter() - start, 1)

  failed = [name for name, ok in (('parity', report['parity']['float32']['pass']),
                                  ('cpu_paths', cpu_paths['pass'])) if ok is False]
  report['failed'] = failed
  text = json.dumps(report, indent=2)
  print(text)
  if args.output:
    pathlib.Path(args.output).write_text(text)
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main())
