"""The precision policy, read from the lowered programs: under bfloat16 every convolution and
matrix product of the network (forward and gradients) takes bfloat16 operands, while the loss
and the gradients stay float32; `model.matmul_precision` reaches every one of them."""
import collections
import re

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from idm_jax import cpu_fast_paths
from idm_jax.config import diffusion as diffusion_config
from idm_jax.config import model as model_config
from idm_jax.diffusion import objective
from idm_jax.diffusion import schedules
from idm_jax.models.idm import IDM
from tests.tiny_model import tiny_model_config

_OP = re.compile(r'stablehlo\.(convolution|dot_general)\b')
_OPERAND_TYPES = re.compile(r'tensor<(?:[0-9x]*x)?(bf16|f32|f16|f64)>')


def _matmul_ops(text: str) -> list[tuple[str, tuple[str, ...], str]]:
  """(op, operand element types, the line) of every convolution and dot_general."""
  ops = []
  for line in text.splitlines():
    match = _OP.search(line)
    if match:
      signature = line.rsplit(' : ', 1)[-1].split('->')[0]
      ops.append((match.group(1), tuple(_OPERAND_TYPES.findall(signature)), line))
  return ops


def _loss_and_grad_program(compute_dtype: str, precision: str) -> tuple[str, jax.stages.Lowered]:
  cfg = tiny_model_config()
  cfg.compute_dtype, cfg.matmul_precision = compute_dtype, precision
  graphdef, params = nnx.split(IDM(cfg, rngs=nnx.Rngs(0)))
  schedule = schedules.make_schedule(diffusion_config.default_diffusion_config())

  def loss(params, lr, hr, p, key):
    return objective.training_loss(nnx.merge(graphdef, params), lr, hr, p, key, schedule, 'l1')

  lowered = jax.jit(jax.value_and_grad(loss)).lower(
      params, jnp.zeros((2, 8, 8, 3)), jnp.zeros((2, 24, 20, 3)), jnp.ones((2,)),
      jax.random.key(0))
  return lowered.as_text(), lowered


@pytest.mark.parametrize('fast_paths', [True, False], ids=['cpu_paths', 'accelerator_paths'])
def test_bfloat16_runs_every_convolution_and_matmul_in_bfloat16(fast_paths):
  with cpu_fast_paths.forced(fast_paths):  # Off: the program GPUs and TPUs get.
    text, lowered = _loss_and_grad_program('bfloat16', 'default')
  ops = _matmul_ops(text)
  kinds = collections.Counter(op for op, _, _ in ops)
  assert kinds['convolution'] > 20 and kinds['dot_general'] > 20, kinds  # Forward and backward.
  wrong = [line for _, types, line in ops if set(types) != {'bf16'}]
  assert not wrong, f'{len(wrong)} of {len(ops)} not in bfloat16, e.g. {wrong[:3]}'
  # The loss and the parameter gradients (the optimizer's inputs) stay float32.
  loss, grads = lowered.out_info
  assert loss.dtype == jnp.float32
  assert {g.dtype for g in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}


@pytest.mark.parametrize('precision', ['highest', 'default'])
def test_matmul_precision_reaches_every_product(precision):
  text, _ = _loss_and_grad_program('float32', precision)
  ops = _matmul_ops(text)
  assert ops and all(types and set(types) == {'f32'} for _, types, _ in ops)
  highest = [line for _, _, line in ops if 'HIGHEST' in line]
  assert len(highest) == (len(ops) if precision == 'highest' else 0), (len(highest), len(ops))


def test_unknown_matmul_precision_names_the_choices():
  cfg = tiny_model_config()
  cfg.matmul_precision = 'tf32'
  with pytest.raises(ValueError, match=r"model.matmul_precision='tf32'.*'highest'"):
    model_config.validate(cfg)
