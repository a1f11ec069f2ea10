r"""Every accelerator figure in one run of at most 6 minutes on one H100/H200 with a cold cache.

  benchmarks/accelerator_check.sh [--cpu_smoke] [--output FILE] [--only STAGE,...]

Each stage of `accelerator_stage.py` runs in its own process with its own time limit, inside the
run's deadline; this parent never imports jax, so a stage that hangs or crashes costs only its
own figures. Each stage's JSON line is printed the moment it ends and appended to FILE (JSON
lines); a stage that runs out of time reports where it was stuck (every thread's stack). The last
line is the summary: the ratios to the official PyTorch code (timed on one H200 in the same
image, `../shared/anchors/official_pytorch/`) and the issue's targets.

Stages, cheap and certain first: versions and device; measured peaks (bf16 and TF32 matrix
products, one model-shaped 3x3 convolution); parity (float32 at 'highest', judged; the device's
default precision and bfloat16, reported); DPM-Solver++ 20-step sampling 16 -> 128 at batch 64
in bfloat16 and float32, the distilled student at 4 evaluations; the face train step at 32 images
per device in bfloat16 then float32 (the seconds of each build phase, median of 5 steps, XLA's
memory plan and the device's peak, MFU against the measured bf16 peak, and an audit of the
optimised program: CPU-path tensors, conditionals, convolutions by type).

--cpu_smoke runs every stage on the training tests' micro model and one parity case: it checks
the script on any machine (the suite runs it), not the speed. Exit status 1 when parity fails,
a stage fails or runs out of time, or CPU-path code is in an accelerator's program.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
# (stage, seconds it may take on an H100/H200 with a cold cache); in this order.
# The train step gets the most: on 2026-12-04 it had not finished building in 170 s on an H200
# (before the CPU paths were kept off GPUs); what does not fit is reported as skipped.
STAGES = (('versions', 15), ('peaks', 25), ('parity', 60), ('sample_bf16', 35),
          ('sample_f32', 25), ('sample_student', 20), ('train_bf16', 110), ('train_f32', 70))
DEADLINE_S = 360
SMOKE_LIMIT_S = 240  # Per stage on a 2-core CPU (compiling dominates).
# Official PyTorch (Ree1s/IDM d224c0e, torch 2.11 + CUDA 13) on one H200, face config: seconds.
OFFICIAL_H200 = {'denoise_b64_f32': 0.0877, 'denoise_b64_bf16': 0.0815,
                 'train_b32_f32': 0.151, 'train_b32_bf16': 0.121}
TARGETS = {'train_bf16_over_official': 0.5, 'train_f32_over_official': 0.7,
           'sample_bf16_images_per_s': 250, 'sample_student_images_per_s': 1000}


def run_stage(name: str, limit_s: float, args: argparse.Namespace) -> dict:
  """One stage in a child process; its JSON line, or what went wrong."""
  command = [sys.executable, str(HERE / 'accelerator_stage.py'), name,
             f'--limit_s={limit_s}', f'--fixture={args.fixture}']
  if args.cpu_smoke:
    command.append('--cpu_smoke')
  if name.startswith('train') and args.peak_tflops:
    command.append(f'--peak_tflops={args.peak_tflops}')
  start = time.perf_counter()
  try:
    child = subprocess.run(command, capture_output=True, text=True, timeout=limit_s + 10,
                           env={**os.environ, 'PYTHONUNBUFFERED': '1'})
  except subprocess.TimeoutExpired as e:
    stderr = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or '')
    return {'stage': name, 'status': 'timeout', 'limit_s': limit_s, 'stderr_tail': stderr[-3000:]}
  lines = [line for line in child.stdout.splitlines() if line.startswith('{')]
  if child.returncode == 0 and lines:
    return json.loads(lines[-1])
  stuck = 'Timeout (' in child.stderr  # faulthandler's header when the limit struck.
  return {'stage': name, 'status': 'timeout' if stuck else 'error',
          'seconds': round(time.perf_counter() - start, 1), 'limit_s': limit_s,
          'returncode': child.returncode, 'stderr_tail': child.stderr[-3000:]}


def summary(results: dict[str, dict], cpu_smoke: bool) -> dict:
  """Ratios to the official code, targets, and what failed."""
  ok = {k: v for k, v in results.items() if v.get('status') == 'ok'}
  out = {'stage': 'summary', 'failed': sorted(k for k in results if k not in ok)}
  parity = ok.get('parity', {}).get('highest', {})
  if parity.get('pass') is False:
    out['failed'].append('parity')
  on_accelerator = ok.get('versions', {}).get('backend') not in (None, 'cpu')
  for name in ('train_bf16', 'train_f32'):
    if name in ok and on_accelerator and (ok[name]['hlo']['winograd_tensors']
                                          or ok[name]['hlo']['conditionals']):
      out['failed'].append(f'{name}: CPU paths in the program')
  device = ok.get('versions', {}).get('device', '')
  if cpu_smoke or not on_accelerator or 'H200' not in device:
    return out  # The official figures were timed on an H200: ratios on that card only.
  ratios = {}
  for dtype, official in (('bf16', 'train_b32_bf16'), ('f32', 'train_b32_f32')):
    if f'train_{dtype}' in ok:
      ratios[f'train_{dtype}_over_official'] = round(
          ok[f'train_{dtype}']['step_s_median'] / OFFICIAL_H200[official], 3)
  for dtype in ('bf16', 'f32'):
    if f'sample_{dtype}' in ok:
      ratios[f'denoise_{dtype}_over_official'] = round(
          ok[f'sample_{dtype}']['ms_per_evaluation'] / 1e3 / OFFICIAL_H200[f'denoise_b64_{dtype}'],
          3)
  for name in ('sample_bf16', 'sample_student'):
    if name in ok:
      ratios[f'{name}_images_per_s'] = ok[name]['images_per_s']
  if 'train_bf16' in ok and 'peaks' in ok:  # The step runs on every device; the peak is one's.
    ratios['train_bf16_mfu_of_measured_peak'] = round(
        ok['train_bf16']['achieved_tflops'] / ok['train_bf16']['devices']
        / ok['peaks']['matmul_bf16']['tflops'], 3)
  out['ratios'] = ratios
  out['targets_met'] = {
      k: (ratios[k] <= v if k.endswith('official') else ratios[k] >= v)
      for k, v in TARGETS.items() if k in ratios}
  return out


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--cpu_smoke', action='store_true',
                      help="toy sizes on the training tests' micro model and one parity case")
  parser.add_argument('--output', help='append every JSON line here too')
  parser.add_argument('--only', help='comma-separated stages (default: all)')
  parser.add_argument('--fixture', default=str(HERE.parents[1] / 'shared' / 'reference'
                                               / 'idm_official_small.npz'))
  parser.add_argument('--peak_tflops', type=float, default=0.0,
                      help='bf16 peak for the train stages\' MFU (default: none; the summary '
                      'quotes the measured one)')
  args = parser.parse_args(argv)
  chosen = args.only.split(',') if args.only else [name for name, _ in STAGES]
  unknown = set(chosen) - {name for name, _ in STAGES}
  if unknown:
    parser.error(f'--only: unknown stage(s) {sorted(unknown)}; '
                 f'choose from {[name for name, _ in STAGES]}')
  output = pathlib.Path(args.output) if args.output else None
  deadline = time.monotonic() + (DEADLINE_S if not args.cpu_smoke else 8 * SMOKE_LIMIT_S)

  def emit(result: dict) -> None:
    line = json.dumps(result)
    print(line, flush=True)
    if output is not None:
      with output.open('a') as f:
        f.write(line + '\n')

  results = {}
  for name, limit_s in STAGES:
    if name not in chosen:
      continue
    left = deadline - time.monotonic()
    if left < 5:
      results[name] = {'stage': name, 'status': 'skipped', 'why': 'the run\'s deadline passed'}
    else:
      limit = SMOKE_LIMIT_S if args.cpu_smoke else limit_s
      results[name] = run_stage(name, min(limit, left), args)
    emit(results[name])
  final = summary(results, args.cpu_smoke)
  emit(final)
  return 1 if final['failed'] else 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
