"""Official checkpoints: parity with the shared fixture and the converter's error messages."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from idm_jax.checkpoints import official
from idm_jax.models import conv2d
from idm_jax.models.idm import IDM, count_params
from idm_jax.tools import check_official


@pytest.fixture(scope='module')
def fixture_parts(reference_npz):
  state = official.load_state_dict(reference_npz)
  with np.load(reference_npz) as data:
    cfg = official.model_config_from_official(json.loads(str(data['config_json'])))
  return state, cfg


@pytest.mark.parametrize('fast_paths,cases', [('1', (0, 1, 2)), ('0', (2,))])
def test_parity_with_official_outputs(reference_npz, fast_paths, cases):
  """The contract: every case of the fixture within 1e-4 relative L2 (we reach ~2e-6) with the
  CPU fast paths on (IDM_JAX_CPU_FAST_PATHS), and with them off on the case of a non-multiple-of-4
  size (XLA's own convolutions: the path GPUs and TPUs take)."""
  env = {**os.environ, 'IDM_JAX_CPU_FAST_PATHS': fast_paths}
  proc = subprocess.run([sys.executable, '-m', 'idm_jax.tools.check_official',
                         str(reference_npz), *map(str, cases)], capture_output=True, text=True,
                        check=False, env=env)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  results = [json.loads(line) for line in proc.stdout.splitlines()]
  assert [r['case'] for r in results] == list(cases)
  for r in results:
    assert r['pass']
    for quantity in ('x_con', 'eps'):
      assert r[quantity]['rel_l2'] < 1e-5, r
    assert r['loss']['max_abs'] < 1e-5, r


def test_parity_with_every_conv_on_winograd(reference_npz, monkeypatch):
  """On CPU large 3x3 convolutions run Winograd's algorithm, whose transforms lose a few bits;
  with every 3x3 convolution of the fixture's network on it, the contract still holds."""
  monkeypatch.setattr(conv2d, '_MIN_FLOPS', 0)
  monkeypatch.setattr(conv2d, '_MIN_TILES', 1)
  traced = []
  winograd = conv2d.winograd_conv3x3
  monkeypatch.setitem(conv2d.CONV_PATHS, 'winograd',
                      lambda x, k: traced.append(x.shape) or winograd(x, k))
  # One case (a non-multiple-of-4 output size, 52x52): the Winograd graph compiles slowly.
  [result] = check_official.check(str(reference_npz), cases=(2,))
  assert len(traced) > 10  # Encoder, conditioning and U-Net convolutions.
  assert check_official.passes(result), result
  for quantity in ('x_con', 'eps'):
    assert result[quantity]['rel_l2'] < 1e-5, result


def test_check_official_fails_on_a_wrong_network(reference_npz, tmp_path):
  """A perturbed weight must make the checker report failure (on the cheapest case)."""
  with np.load(reference_npz) as data:
    arrays = {k: data[k] for k in data.files}
  key = 'state/denoise_fn.ups.2.imnet.0.weight'
  arrays[key] = arrays[key] * 1.5
  bad = tmp_path / 'bad.npz'
  np.savez(bad, **arrays)
  [result] = check_official.check(str(bad), cases=(2,))
  assert result['case'] == 2
  assert not check_official.passes(result)
  assert result['eps']['rel_l2'] > 1e-3


def test_used_parameters_are_exactly_the_mapped_keys(fixture_parts):
  state, cfg = fixture_parts
  key_map, _ = official.official_key_map(cfg)
  model = nnx.eval_shape(lambda: IDM(cfg, rngs=nnx.Rngs(0)))
  assert count_params(model) == sum(state[k].size for k in key_map)
  assert len(state) == 314


def _convert(state, cfg):
  model = nnx.eval_shape(lambda: IDM(cfg, rngs=nnx.Rngs(0)))
  return official.convert_state_dict(state, model, cfg)


def test_missing_key_is_named(fixture_parts):
  state, cfg = fixture_parts
  broken = dict(state)
  del broken['denoise_fn.mid.0.attn.qkv.weight']
  with pytest.raises(official.CheckpointMismatch,
                     match=r'denoise_fn\.mid\.0\.attn\.qkv\.weight: missing'):
    _convert(broken, cfg)


def test_unexpected_key_is_named(fixture_parts):
  state, cfg = fixture_parts
  broken = dict(state, **{'denoise_fn.extra_head.weight': np.zeros((3, 3), np.float32)})
  with pytest.raises(official.CheckpointMismatch,
                     match=r'denoise_fn\.extra_head\.weight: unexpected key \(shape \(3, 3\)\)'):
    _convert(broken, cfg)


def test_misshaped_key_names_both_shapes(fixture_parts):
  state, cfg = fixture_parts
  broken = dict(state)
  broken['encoder.tail.0.weight'] = np.zeros((3, 16, 3, 3), np.float32)
  with pytest.raises(official.CheckpointMismatch) as err:
    _convert(broken, cfg)
  message = str(err.value)
  assert 'encoder.tail.0.weight' in message
  assert '(3, 16, 3, 3)' in message and '(3, 3, 32, 3)' in message


def test_wrong_config_is_reported(fixture_parts):
  state, cfg = fixture_parts
  wider = cfg.copy_and_resolve_references()
  wider.inner_channel = 64
  with pytest.raises(official.CheckpointMismatch, match='check that the model config matches'):
    _convert(state, wider)


def test_module_prefix_and_npz_export(fixture_parts, tmp_path):
  state, cfg = fixture_parts
  path = tmp_path / 'ddp.npz'
  np.savez(path, **{f'module.{k}': v for k, v in state.items()})
  loaded = official.load_state_dict(path)
  assert set(loaded) == set(state)
  params = _convert(loaded, cfg)
  flat = dict(nnx.to_flat_state(params))
  np.testing.assert_array_equal(flat[('encoder', 'head', 'kernel')].get_value(),
                                np.transpose(state['encoder.head.0.weight'], (2, 3, 1, 0)))


def test_missing_file(tmp_path):
  with pytest.raises(FileNotFoundError, match='does not exist'):
    official.load_state_dict(tmp_path / 'nope.pth')


def test_pth_reading(fixture_parts, tmp_path):
  """With torch: a real .pth round-trips. Without: a clear install hint."""
  state, _ = fixture_parts
  path = tmp_path / 'I1000_E1_gen.pth'
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    path.write_bytes(b'not used')
    with pytest.raises(ImportError, match=r'idm_jax\[torch\]'):
      official.load_state_dict(path)
    return
  torch.save({k: torch.from_numpy(v) for k, v in state.items()}, path)
  loaded = official.load_state_dict(path)
  np.testing.assert_array_equal(loaded['encoder.head.0.weight'], state['encoder.head.0.weight'])


def test_fast_paths_off_traces_only_xla_convolutions(monkeypatch):
  """IDM_JAX_CPU_FAST_PATHS=0: even a Winograd-sized convolution is XLA's own."""
  monkeypatch.setenv('IDM_JAX_CPU_FAST_PATHS', '0')
  spy = []
  for name in ('winograd', 'im2col'):
    original = conv2d.CONV_PATHS[name]
    monkeypatch.setitem(conv2d.CONV_PATHS, name,
                        lambda x, k, f=original: spy.append(x.shape) or f(x, k))
  x = jax.numpy.ones((1, 64, 64, 64), jax.numpy.float32)
  k = jax.numpy.ones((3, 3, 64, 64), jax.numpy.float32) / 576
  expected = conv2d._xla_conv(x, k, 1, 1)
  np.testing.assert_allclose(jax.jit(lambda a, b: conv2d.conv2d(a, b, 1, 1))(x, k), expected,
                             rtol=1e-5)
  assert not spy
  monkeypatch.setenv('IDM_JAX_CPU_FAST_PATHS', '1')
  jax.jit(lambda a, b: conv2d.conv2d(a, b, 1, 1))(x, k)
  assert spy  # The same call takes the Winograd path when the switch is on.
