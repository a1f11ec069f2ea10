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
from flax import nnx

from idm_jax.models import conv2d
from idm_jax.models.idm import IDM, count_params
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
                                                                    reference_npz):
  """As on the GPU image: none of TensorFlow, clu or grain is installed there."""
  python, env = isolated_site.python_without(('tensorflow', 'clu', 'grain', 'keras'),
                                             tmp_path / 'site', subprocess_env)
  wrapper = tmp_path / 'python'
  wrapper.write_text('#!/bin/sh\nexec ' + ' '.join(python) + ' "$@"\n')
  wrapper.chmod(0o755)
  env['PYTHON'] = str(wrapper)
  output = tmp_path / 'check.json'
  result = subprocess.run(
      ['bash', str(BENCHMARKS / 'accelerator_check.sh'), '--cpu-smoke', f'--output={output}',
       f'--fixture={reference_npz}'], cwd=REPO, env=env, capture_output=True, text=True,
      timeout=600)
  assert result.returncode == 0, result.stderr[-5000:]
  report = json.loads(output.read_text())
  assert report['failed'] == [] and report['parity']['float32']['pass'] is True
  assert report['parity']['float32']['eps_rel_l2_max'] < 1e-4
  # bfloat16 is off by far more than float32 at either precision, and measured, not judged.
  assert report['parity']['bfloat16']['eps_rel_l2_max'] > 10 * report['parity']['float32'][
      'eps_rel_l2_max']
  for dtype in ('float32', 'bfloat16'):
    step = report['train_step'][dtype]
    assert step['compute_dtype'] == dtype and math.isfinite(step['loss'])
  assert report['sampling']['images_per_s'] > 0
