"""`idm-jax convert`: official state dict -> Orbax checkpoint that the project restores."""
import json
import textwrap

import numpy as np
import pytest
from flax import nnx

from idm_jax.checkpoints import official, store
from idm_jax.cli import main as cli
from idm_jax.models.idm import IDM


@pytest.fixture(scope='module')
def fixture_config_file(reference_npz, tmp_path_factory):
  tmp_path = tmp_path_factory.mktemp('config')
  with np.load(reference_npz) as data:
    official_json = str(data['config_json'])
  path = tmp_path / 'fixture_config.py'
  path.write_text(textwrap.dedent(f'''
      import json
      from idm_jax.checkpoints import official
      from idm_jax.config import experiment

      def get_config():
        config = experiment.default_config()
        config.model = official.model_config_from_official(json.loads({official_json!r}))
        config.model.max_scale = 4.0
        config.data.max_hr_size = 4 * config.data.lr_size
        return config
  '''))
  return path


@pytest.fixture(scope='module')
def converted(reference_npz, fixture_config_file, tmp_path_factory):
  out = tmp_path_factory.mktemp('ckpt') / 'converted'
  assert cli.run(['convert', '--torch_checkpoint', str(reference_npz), '--config',
                  str(fixture_config_file), '--output', str(out)]) == 0
  return out


def test_convert_then_restore_gives_the_official_weights(reference_npz, converted):
  out = converted
  with np.load(reference_npz) as data:
    cfg = official.model_config_from_official(json.loads(str(data['config_json'])))
  cfg.max_scale = 4.0
  model = nnx.eval_shape(lambda: IDM(cfg, rngs=nnx.Rngs(123)))  # Replaced by the restore.
  for use_ema in (True, False):
    assert store.restore_params(out, model, use_ema=use_ema) == 0
    state = official.load_state_dict(reference_npz)
    np.testing.assert_array_equal(model.encoder.tail.kernel.get_value(),
                                  np.transpose(state['encoder.tail.0.weight'], (2, 3, 1, 0)))
    np.testing.assert_array_equal(
        model.upsamplers[0].mlp[1].kernel.get_value(),
        state['denoise_fn.ups.2.imnet.1.weight'].T)


def test_convert_errors_are_one_line_messages(reference_npz, fixture_config_file, converted,
                                              tmp_path, capsys):
  assert cli.run(['convert', '--torch_checkpoint', str(reference_npz), '--config',
                  str(fixture_config_file), '--output', str(converted)]) == 2
  assert 'is not empty' in capsys.readouterr().err
  missing = tmp_path / 'missing.pth'
  assert cli.run(['convert', '--torch_checkpoint', str(missing), '--config',
                  str(fixture_config_file), '--output', str(tmp_path / 'o1')]) == 2
  assert 'does not exist' in capsys.readouterr().err
  assert cli.run(['convert', '--torch_checkpoint', str(reference_npz), '--config',
                  str(tmp_path / 'nope.py'), '--output', str(tmp_path / 'o2')]) == 2
  assert 'config file' in capsys.readouterr().err


def test_restore_into_a_different_network_names_the_fields(reference_npz, converted):
  out = converted
  with np.load(reference_npz) as data:
    cfg = official.model_config_from_official(json.loads(str(data['config_json'])))
  cfg.inner_channel = 64
  model = nnx.eval_shape(lambda: IDM(cfg, rngs=nnx.Rngs(0)))
  with pytest.raises(ValueError, match='inner_channel: checkpoint 32, config 64'):
    store.restore_params(out, model)
