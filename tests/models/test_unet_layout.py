"""The U-Net layout: hand-written expectations, the official fixture's weights, the built model."""
import json

import numpy as np
import pytest
from flax import nnx

from idm_jax.checkpoints import official
from idm_jax.config.model import default_model_config
from idm_jax.models.idm import IDM
from idm_jax.models.unet_layout import (ConvSpec, Level, NormActConvSpec, ResAttnSpec,
                                        UpsamplerSpec, unet_layout)
from tests.tiny_model import tiny_model_config

# Parameters outside the U-Net: the encoder, the LR conditioning and the noise-level MLP.
NON_UNET = ('encoder', 'lr_conditioning', 'noise_mlp')
# Where each kind of spec keeps its first 3x3 convolution: official key suffix, our path suffix.
FIRST_CONV = {ConvSpec: ('weight', ('kernel',)),
              ResAttnSpec: ('res_block.block1.block.3.weight', ('res', 'block1', 'conv', 'kernel')),
              NormActConvSpec: ('block.3.weight', ('conv', 'kernel'))}


def _two_level_config():
  cfg = tiny_model_config()
  cfg.channel_multiplier = (1, 2)  # 8 then 16 channels.
  cfg.res_blocks = 1
  cfg.image_size = 32
  cfg.attn_res = (16,)  # Level 1 only.
  return cfg


def test_two_level_layout_by_hand():
  """Skips, by channels: conv_in 8, downs.1 8, downs.2 8, downs.3 16; the up side takes them
  back last first."""
  expected_down = (
      Level((ResAttnSpec(('down_blocks', 0, 0), 'downs.1', 8, 8, False),),
            ConvSpec(('downsamplers', 0), 'downs.2.conv', 8, 8, 2)),
      Level((ResAttnSpec(('down_blocks', 1, 0), 'downs.3', 8, 16, True),), None))
  expected_up = (
      Level((ResAttnSpec(('up_blocks', 0, 0), 'ups.0', 16 + 16, 16, True),
             ResAttnSpec(('up_blocks', 0, 1), 'ups.1', 16 + 8, 16, True)),
            UpsamplerSpec(('upsamplers', 0), 'ups.2', 16, 1)),
      Level((ResAttnSpec(('up_blocks', 1, 0), 'ups.3', 16 + 8, 8, False),
             ResAttnSpec(('up_blocks', 1, 1), 'ups.4', 8 + 8, 8, False)), None))
  layout = unet_layout(_two_level_config())
  assert layout.conv_in == ConvSpec(('conv_in',), 'downs.0', 6, 8, 1)
  assert layout.down == expected_down
  assert layout.mid == (ResAttnSpec(('mid', 0), 'mid.0', 16, 16, True),
                        ResAttnSpec(('mid', 1), 'mid.1', 16, 16, False))
  assert layout.up == expected_up
  assert layout.conv_out == NormActConvSpec(('conv_out',), 'final_conv', 8, 3)
  assert [s.official for s in layout.specs()] == [
      'downs.0', 'downs.1', 'downs.2.conv', 'downs.3', 'mid.0', 'mid.1',
      'ups.0', 'ups.1', 'ups.2', 'ups.3', 'ups.4', 'final_conv']


def test_official_indices_in_closed_form():
  """The face config: R res blocks and a downsampler per level on the way down (after downs.0),
  R + 1 blocks and an upsampler per level on the way up."""
  cfg = default_model_config()
  num_levels, r = len(cfg.channel_multiplier), cfg.res_blocks
  layout = unet_layout(cfg)
  down = [[s.official for s in level.blocks] for level in layout.down]
  assert down == [[f'downs.{1 + l * (r + 1) + j}' for j in range(r)] for l in range(num_levels)]
  downsamplers = [level.resample for level in layout.down[:-1]]
  assert [c.official for c in downsamplers] == [
      f'downs.{1 + l * (r + 1) + r}.conv' for l in range(num_levels - 1)]
  assert layout.down[-1].resample is None
  up = [[s.official for s in level.blocks] for level in layout.up]
  assert up == [[f'ups.{i * (r + 2) + j}' for j in range(r + 1)] for i in range(num_levels)]
  upsamplers = [level.resample for level in layout.up[:-1]]
  assert [u.official for u in upsamplers] == [
      f'ups.{i * (r + 2) + r + 1}' for i in range(num_levels - 1)]
  assert [u.level for u in upsamplers] == list(range(num_levels - 1, 0, -1))
  assert layout.up[-1].resample is None


def test_matches_the_official_fixture(reference_npz):
  """Every official U-Net module of the fixture is in the layout, with its channel counts."""
  state = official.load_state_dict(reference_npz)
  with np.load(reference_npz) as data:
    cfg = official.model_config_from_official(json.loads(str(data['config_json'])))
  layout = unet_layout(cfg)
  modules = {'.'.join(k.split('.')[1:3]) for k in state
             if k.startswith(('denoise_fn.downs.', 'denoise_fn.mid.', 'denoise_fn.ups.'))}
  assert {'.'.join(s.official.split('.')[:2]) for s in layout.specs()} == modules | {'final_conv'}
  for spec in layout.specs():
    prefix = f'denoise_fn.{spec.official}'
    if isinstance(spec, UpsamplerSpec):
      assert state[f'{prefix}.style.activate.bias'].shape == (spec.channels,), spec
    else:
      weight = state[f'{prefix}.{FIRST_CONV[type(spec)][0]}']
      assert weight.shape == (spec.out_channels, spec.in_channels, 3, 3), spec
    if isinstance(spec, ResAttnSpec):
      assert (f'{prefix}.attn.qkv.weight' in state) == spec.with_attn, spec


@pytest.mark.parametrize('make_config', [tiny_model_config, _two_level_config])
def test_layout_covers_the_built_model(make_config):
  """Every U-Net parameter of IDM lies under a spec's path, every spec's path holds
  parameters, and the kernels there have the spec's channel counts."""
  cfg = make_config()
  layout = unet_layout(cfg)
  model = nnx.eval_shape(lambda: IDM(cfg, rngs=nnx.Rngs(0)))
  params = {path: var.shape for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param))}
  prefixes = [s.path for s in layout.specs()] + [(name,) for name in NON_UNET]
  for path in params:
    assert any(path[:len(prefix)] == prefix for prefix in prefixes), path
  for spec in layout.specs():
    assert any(path[:len(spec.path)] == spec.path for path in params), spec
    if isinstance(spec, UpsamplerSpec):
      assert params[spec.path + ('mix_bias', 'bias')] == (spec.channels,), spec
    else:
      kernel = params[spec.path + FIRST_CONV[type(spec)][1]]
      assert kernel == (3, 3, spec.in_channels, spec.out_channels), spec
    if isinstance(spec, ResAttnSpec):
      assert (spec.path + ('attn', 'qkv', 'kernel') in params) == spec.with_attn, spec
