"""The benchmarks run in the suite at toy sizes, through their public entry points, so an API
change breaks them here and not on the next GPU; their FLOP count against closed forms."""
import json
import math
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from idm_jax.models import conv2d
from idm_jax.models.idm import IDM, count_params
from idm_jax.training import train
from tests import isolated_site
from tests.training import common

REPO = pathlib.Path(__file__).resolve().parents[2]
BENCHMARKS = REPO / 'benchmarks'
MICRO_CONFIG = pathlib.Path(__file__).with_name('micro_config.py')
sys.path.insert(0, str(BENCHMARKS))

import model_flops  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_model_flops_counts_convolutions_and_products_in_closed_form():
  n, h, w, c_in, c_out, k = 2, 12, 10, 8, 16, 5
  x, kernel = jnp.ones((n, h, w, c_in)), jnp.ones((3, 3, c_in, c_out))
  dense = jnp.ones((c_out, k))

  def forward(x, kernel, dense):
    return jnp.sum(conv2d.conv2d(x, kernel, 1, 1) @ dense)

  conv = 2 * n * h * w * c_out * 9 * c_in
  matmul = 2 * n * h * w * c_out * k
  assert model_flops.model_flops(forward, x, kernel, dense) == conv + matmul
  # Gradients: the input and the kernel gradient of each cost as much as its forward pass.
  assert model_flops.model_flops(jax.grad(forward, (0, 1, 2)), x, kernel, dense) == 3 * (
      conv + matmul)
  # Strided and 1x1 convolutions count their own output size and window.
  strided = lambda x, kernel: conv2d.conv2d(x, kernel, 2, 1)
  assert model_flops.model_flops(strided, x, kernel) == 2 * n * 6 * 5 * c_out * 9 * c_in


def test_bench_train_runs_the_train_step(tmp_path, subprocess_env):
  result = subprocess.run(
      [sys.executable, str(BENCHMARKS / 'bench_train.py'), f'--config={MICRO_CONFIG}',
       '--batch=2', '--lr_size=8', '--hr_size=16', '--steps=2'],
      cwd=tmp_path, env=subprocess_env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-5000:]
  report = json.loads(result.stdout)
  params = count_params(nnx.eval_shape(lambda: IDM(common.micro_config().model,
                                                   rngs=nnx.Rngs(0))))
  assert report['params'] == params
  assert np.isfinite(report['loss']) and len(report['step_s_all']) == 2
  assert report['model_tflop_per_step'] > 0 and 'meets_target' not in report


def test_accelerator_check_cpu_smoke_without_tensorflow_clu_or_grain(tmp_path, subprocess_env,
                                                                    reference_npz, xla_cache_dir):
  """Every stage, each in its own process, as on the GPU image: none of TensorFlow, clu or grain
  is installed there."""
  python, env = isolated_site.python_without(('tensorflow', 'clu', 'grain', 'keras'),
                                             tmp_path / 'site', subprocess_env)
  wrapper = tmp_path / 'python'
  wrapper.write_text('#!/bin/sh\nexec ' + ' '.join(python) + ' "$@"\n')
  wrapper.chmod(0o755)
  env.update(PYTHON=str(wrapper), IDM_JAX_COMPILATION_CACHE=xla_cache_dir)
  output = tmp_path / 'check.jsonl'
  result = subprocess.run(
      ['bash', str(BENCHMARKS / 'accelerator_check.sh'), '--cpu_smoke', f'--output={output}',
       f'--fixture={reference_npz}'], cwd=REPO, env=env, capture_output=True, text=True,
      timeout=1200)
  assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
  lines = [json.loads(line) for line in output.read_text().splitlines()]
  assert lines == [json.loads(line) for line in result.stdout.splitlines()]  # Printed as written.
  stages = {line['stage']: line for line in lines}
  assert list(stages) == ['versions', 'peaks', 'parity', 'sample_bf16', 'sample_f32',
                          'sample_student', 'train_bf16', 'train_f32', 'summary']
  assert stages['summary']['failed'] == []
  assert all(line['status'] == 'ok' for name, line in stages.items() if name != 'summary')
  parity = stages['parity']
  assert parity['highest']['pass'] and parity['highest']['eps_rel_l2_max'] < 1e-4
  # bfloat16 is off by far more than float32, and measured, not judged.
  assert parity['bfloat16']['eps_rel_l2_max'] > 10 * parity['highest']['eps_rel_l2_max']
  for dtype in ('bf16', 'f32'):
    train = stages[f'train_{dtype}']
    assert math.isfinite(train['loss']) and set(train['phases']) >= {
        'init_s', 'trace_s', 'lower_s', 'compile_s', 'first_call_s'}
    assert train['hlo']['convolutions']  # The audit read the optimised program.
  assert stages['sample_student']['evaluations'] == 4
  assert stages['versions']['packages']['jax'] and stages['peaks']['matmul_bf16']['tflops'] > 0


def test_accelerator_check_reports_a_stage_that_hangs(tmp_path, monkeypatch, capsys):
  """A stage past its limit prints where it was stuck and fails the run; later stages run."""
  sys.path.insert(0, str(BENCHMARKS))
  import accelerator_check  # pylint: disable=g-import-not-at-top
  stage = tmp_path / 'accelerator_stage.py'
  stage.write_text(
      'import faulthandler, sys, time\n'
      'if sys.argv[1] == "versions":\n'
      '  faulthandler.dump_traceback_later(1, exit=True)\n'
      '  time.sleep(60)\n'
      'print(\'{"stage": "%s", "status": "ok"}\' % sys.argv[1])\n')
  monkeypatch.setattr(accelerator_check, 'HERE', tmp_path)
  assert accelerator_check.main(['--only=versions,peaks', '--cpu_smoke']) == 1
  lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
  assert lines[0]['stage'] == 'versions' and lines[0]['status'] == 'timeout'
  assert 'accelerator_stage.py", line 4' in lines[0]['stderr_tail']  # Where it was stuck.
  assert lines[1] == {'stage': 'peaks', 'status': 'ok'}
  assert lines[2]['failed'] == ['versions']


def _run_benchmark(script: str, *args: str, env: dict[str, str], cwd: pathlib.Path) -> dict:
  result = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-5000:]
  return json.loads(result.stdout)


def test_bench_denoiser_times_both_variants(tmp_path, subprocess_env):
  report = _run_benchmark('bench_denoiser.py', f'--config={MICRO_CONFIG}', '--lr=8', '--hr=16',
                          '--batches=1,2', '--repeats=2', '--official_ms=50,80',
                          env=subprocess_env, cwd=tmp_path)
  assert [r['batch'] for r in report['results']] == [1, 2]
  for entry in report['results']:
    full, cached = entry['full_call'], entry['cached_step']
    assert len(full['times_ms']) == len(cached['times_ms']) == 2
    # The cached step skips the encoder and the conditioning network: fewer FLOPs.
    assert 0 < cached['model_gflop'] < full['model_gflop']
    official = {1: 50, 2: 80}[entry['batch']]
    assert entry['ratio_full_to_official'] == pytest.approx(full['median_ms'] / official,
                                                            abs=1e-3)
  two, one = (r['full_call']['model_gflop'] for r in report['results'][::-1])
  assert two == pytest.approx(2 * one, rel=2e-3)  # FLOPs scale with the batch (4 digits).


def test_bench_data_measures_both_pipelines(tmp_path, subprocess_env):
  report = _run_benchmark('bench_data.py', '--faces=8', '--div2k=2', '--batches=4,2',
                          '--steps=2', '--warmup=1', '--workers=0:0', env=subprocess_env,
                          cwd=tmp_path)
  for name in ('faces_16_128', 'div2k_40_160'):
    assert report[f'{name}/workers=0,threads=0/pairs_per_s'] > 0
    assert report[f'{name}/workers=0,threads=0/cpu_ms_per_pair'] > 0


def test_model_flops_counts_direct_convolutions_even_from_a_cached_cpu_trace():
  """A jitted function traced first with the CPU's Winograd path holds a platform switch; its
  count is still the direct convolution's, as in a fresh trace with the fast paths off."""
  x, kernel = jnp.ones((2, 32, 32, 64)), jnp.ones((3, 3, 64, 64))
  conv = jax.jit(lambda x, kernel: conv2d.conv2d(x, kernel, 1, 1))
  conv.trace(x, kernel)  # Fills jit's trace cache with the fast paths as they are.
  assert model_flops.model_flops(conv, x, kernel) == 2 * 2 * 32 * 32 * 64 * 9 * 64
  # The same for both gradients (the custom gradient's platform switches hold both paths).
  grads = jax.jit(jax.value_and_grad(lambda x, kernel: jnp.sum(conv(x, kernel)), (0, 1)))
  grads.trace(x, kernel)
  assert model_flops.model_flops(grads, x, kernel) == 3 * 2 * 2 * 32 * 32 * 64 * 9 * 64


def test_bench_heldout_and_bench_distill_on_a_micro_teacher_and_student(tmp_path,
                                                                       subprocess_env):
  teacher = common.micro_config()
  teacher.train.num_steps = 4
  train.train_and_evaluate(teacher, tmp_path / 'teacher')
  student = common.micro_config()
  student.distill.teacher = str(tmp_path / 'teacher' / 'checkpoints')
  student.distill.teacher_steps = 4
  student.sampler.name, student.sampler.steps = 'distilled', 2
  student.train.num_steps, student.checkpoint.every_steps = 2, 2
  train.train_and_evaluate(student, tmp_path / 'student')

  heldout = _run_benchmark('bench_heldout.py', f'--checkpoint={tmp_path}/teacher/checkpoints',
                           f'--config={MICRO_CONFIG}', '--scales=2', env=subprocess_env,
                           cwd=REPO)
  rows = heldout['rows']
  assert [r['image'] for r in rows] == heldout['images'] and len(rows) == 10
  assert all(np.isfinite(r['bicubic_psnr']) and np.isfinite(r['idm_psnr']) for r in rows)
  assert heldout['means']['x2']['bicubic_psnr'] > 28  # 31.8 dB on these crops (README).
  assert heldout['means']['x2']['bicubic_psnr'] == pytest.approx(
      np.mean([r['bicubic_psnr'] for r in rows]), abs=1e-3)

  distill = _run_benchmark(
      'bench_distill.py', f'--teacher={tmp_path}/teacher/checkpoints',
      f'--student=micro={tmp_path}/student/checkpoints', f'--teacher_config={MICRO_CONFIG}',
      '--scales=x2', '--steps=1', '--repeats=1', env=subprocess_env, cwd=REPO)
  means = distill['means']['x2']
  assert set(means) == {'teacher', 'micro/teacher', 'micro/1', 'bicubic'}
  for method in ('teacher', 'micro/teacher', 'micro/1'):
    assert means[method]['seconds_per_image'] > 0
    assert np.isfinite(means[method]['psnr']) and np.isfinite(means[method]['lr_consistency'])
  # The same bicubic baseline in both benchmarks (their images and LR inputs are the same).
  assert means['bicubic']['psnr'] == pytest.approx(heldout['means']['x2']['bicubic_psnr'],
                                                   abs=0.05)


def test_bench_sampling_tables_and_memory_plans(tmp_path, subprocess_env):
  report = _run_benchmark('bench_sampling.py', f'--config={MICRO_CONFIG}', '--lr=8', '--hr=16',
                          '--quick', '--memory_sizes=64', env=subprocess_env, cwd=tmp_path)
  table = report['batch_1']
  assert {run['steps'] for run in table['timed_runs']} == {4, 20}
  assert table['dpm_solver++_20']['how'] == 'measured'
  for label, steps in (('ddim_50', 50), ('ddim_200', 200)):  # The fit, as documented.
    # To the rounding of what is reported: per_step_s and fixed_s to 1 ms, the result to 10 ms.
    assert table[label]['s_per_image'] == pytest.approx(
        table['fixed_s'] + steps * table['per_step_s'], abs=0.0051 + 0.0005 * (steps + 1))
  (plan,) = report['memory']['64x64']
  assert plan['tiled'] and plan['tiles'] >= 1 and plan['temp_mib'] > 0
  assert plan['peak_mib'] == pytest.approx(
      plan['temp_mib'] + plan['arguments_mib'] + plan['output_mib'], abs=0.11)


def test_accelerator_audit_reads_xla_and_cudnn_convolutions():
  sys.path.insert(0, str(BENCHMARKS))
  import accelerator_stage  # pylint: disable=g-import-not-at-top
  hlo = '\n'.join([
      '  %c = f32[4,16,16,8]{3,2,1,0} convolution(f32[4,16,16,8]{3,2,1,0} %x, f32[3,3,8,8] %k), '
      'window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f',
      '  %g = (bf16[32,128,128,64]{3,2,1,0}, u8[0]{0}) custom-call(bf16[32,128,128,64] %a, '
      'bf16[64,3,3,64] %b), window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_o01i->b01f, '
      'custom_call_target="__cudnn$convForward"',
      '  %w = f32[36,64,64]{2,1,0} dot(f32[36,64,64] %u, f32[36,64,64] %v)',
      '  %s = f32[4] add(f32[4] %p, f32[4] %q), metadata={op_name="convolution"}',
      '  %k = f32[4] conditional(s32[] %i, f32[4] %p, f32[4] %q)'])
  assert accelerator_stage.audit(hlo) == {'winograd_tensors': 3, 'conditionals': 1,
                                          'convolutions': {'bf16': 1, 'f32': 1}}


def test_accelerator_summary_ratios_on_an_h200():
  sys.path.insert(0, str(BENCHMARKS))
  import accelerator_check  # pylint: disable=g-import-not-at-top
  clean = {'winograd_tensors': 0, 'conditionals': 0, 'convolutions': {'bf16': 10}}
  results = {
      'versions': {'status': 'ok', 'backend': 'gpu', 'device': 'NVIDIA H200'},
      'peaks': {'status': 'ok', 'matmul_bf16': {'tflops': 800.0}},
      'parity': {'status': 'ok', 'highest': {'pass': True}},
      'sample_bf16': {'status': 'ok', 'ms_per_evaluation': 20.0, 'images_per_s': 300.0},
      'sample_student': {'status': 'ok', 'images_per_s': 900.0},
      'train_bf16': {'status': 'ok', 'step_s_median': 0.0605, 'achieved_tflops': 1600.0,
                     'devices': 8, 'hlo': clean},
      'train_f32': {'status': 'timeout'}}
  out = accelerator_check.summary(results, cpu_smoke=False)
  assert out['failed'] == ['train_f32']
  assert out['ratios']['train_bf16_over_official'] == pytest.approx(0.0605 / 0.121, abs=1e-3)
  assert out['ratios']['denoise_bf16_over_official'] == pytest.approx(0.020 / 0.0815, abs=1e-3)
  assert out['ratios']['train_bf16_mfu_of_measured_peak'] == pytest.approx(1600 / 8 / 800)
  assert out['targets_met'] == {'train_bf16_over_official': True,
                                'sample_bf16_images_per_s': True,
                                'sample_student_images_per_s': False}
  # CPU-path code in an accelerator's program fails the run; no ratios off an H200.
  results['train_bf16']['hlo'] = {**clean, 'winograd_tensors': 3}
  results['versions']['device'] = 'NVIDIA A100'
  out = accelerator_check.summary(results, cpu_smoke=False)
  assert 'train_bf16: CPU paths in the program' in out['failed'] and 'ratios' not in out
