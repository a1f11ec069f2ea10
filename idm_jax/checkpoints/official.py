"""Official PyTorch IDM checkpoints (`GaussianDiffusion.state_dict()`) -> our NNX parameters.

The key map is derived from the model config, so any depth, width or block count converts; its
U-Net part comes from `unet_layout`, the description `IDM` is built from. Keys the official
forward pass never reads are recognised and dropped; anything else that does not fit is an error
naming the key and both shapes.
"""
import re
from typing import Callable

import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from idm_jax import paths
from idm_jax.config import model as model_config
from idm_jax.models import unet_layout

Path = tuple  # A path in the NNX parameter tree, e.g. ('encoder', 'head', 'kernel').

# The 13 noise-schedule buffers: the samplers recompute them from the config.
SCHEDULE_BUFFERS = (
    'betas', 'alphas_cumprod', 'alphas_cumprod_prev', 'sqrt_alphas_cumprod',
    'sqrt_one_minus_alphas_cumprod', 'log_one_minus_alphas_cumprod', 'sqrt_recip_alphas_cumprod',
    'sqrt_recipm1_alphas_cumprod', 'posterior_variance', 'posterior_log_variance_clipped',
    'posterior_mean_coef1', 'posterior_mean_coef2', 'ddim_c1')


class CheckpointMismatch(ValueError):
  """The state dict does not fit the configured network."""


def _conv(w: np.ndarray) -> np.ndarray:
  return np.transpose(w, (2, 3, 1, 0))  # (O, I, kh, kw) -> (kh, kw, I, O)


def _linear(w: np.ndarray) -> np.ndarray:
  return np.transpose(w)  # (O, I) -> (I, O)


def _same(w: np.ndarray) -> np.ndarray:
  return w


Entry = tuple[Path, Callable[[np.ndarray], np.ndarray]]


def _conv_entries(prefix: str, path: Path, bias: bool = True) -> dict[str, Entry]:
  out = {f'{prefix}.weight': (path + ('kernel',), _conv)}
  if bias:
    out[f'{prefix}.bias'] = (path + ('bias',), _same)
  return out


def _linear_entries(prefix: str, path: Path) -> dict[str, Entry]:
  return {f'{prefix}.weight': (path + ('kernel',), _linear),
          f'{prefix}.bias': (path + ('bias',), _same)}


def _norm_entries(prefix: str, path: Path) -> dict[str, Entry]:
  return {f'{prefix}.weight': (path + ('scale',), _same),
          f'{prefix}.bias': (path + ('bias',), _same)}


def _block_entries(prefix: str, path: Path) -> dict[str, Entry]:
  """The official `Block` (GroupNorm, Swish, Dropout, Conv2d) as our `NormActConv`."""
  return {**_norm_entries(f'{prefix}.block.0', path + ('norm',)),
          **_conv_entries(f'{prefix}.block.3', path + ('conv',))}


def _res_attn_entries(prefix: str, spec: unet_layout.ResAttnSpec) -> dict[str, Entry]:
  res, ours = f'{prefix}.res_block', spec.path + ('res',)
  out = {}
  out.update(_linear_entries(f'{res}.noise_func.noise_func.0', ours + ('noise_proj',)))
  out.update(_block_entries(f'{res}.block1', ours + ('block1',)))
  out.update(_block_entries(f'{res}.block2', ours + ('block2',)))
  if spec.in_channels != spec.out_channels:
    out.update(_conv_entries(f'{res}.res_conv', ours + ('skip',)))
  if spec.with_attn:
    a, ap = f'{prefix}.attn', spec.path + ('attn',)
    out.update(_norm_entries(f'{a}.norm', ap + ('norm',)))
    out.update(_conv_entries(f'{a}.qkv', ap + ('qkv',), bias=False))
    out.update(_conv_entries(f'{a}.out', ap + ('out',)))
  return out


def _unet_entries(spec: unet_layout.Spec, cfg: ml_collections.ConfigDict) -> dict[str, Entry]:
  """The official keys of one U-Net block of the layout."""
  prefix = f'denoise_fn.{spec.official}'
  match spec:
    case unet_layout.ConvSpec():
      return _conv_entries(prefix, spec.path)
    case unet_layout.ResAttnSpec():
      return _res_attn_entries(prefix, spec)
    case unet_layout.UpsamplerSpec():
      out = {f'{prefix}.style.activate.bias': (spec.path + ('mix_bias', 'bias'), _same)}
      for layer in range(len(cfg.implicit_hidden) + 1):
        out.update(_linear_entries(f'{prefix}.imnet.{layer}', spec.path + ('mlp', layer)))
      return out
    case unet_layout.NormActConvSpec():
      return _block_entries(prefix, spec.path)
  raise TypeError(f'not a U-Net layout spec: {spec!r}')


def official_key_map(cfg: ml_collections.ConfigDict) -> tuple[dict[str, Entry], list[str]]:
  """(used key -> (our path, transform), regexes of keys the official forward never reads)."""
  m: dict[str, Entry] = {}
  # Encoder.
  m.update(_conv_entries('encoder.head.0', ('encoder', 'head')))
  for i in range(cfg.encoder_blocks):
    m.update(_conv_entries(f'encoder.body.{i}.body.0', ('encoder', 'blocks', i, 'conv1')))
    m.update(_conv_entries(f'encoder.body.{i}.body.2', ('encoder', 'blocks', i, 'conv2')))
  m.update(_conv_entries(f'encoder.body.{cfg.encoder_blocks}', ('encoder', 'body_out')))
  m.update(_conv_entries('encoder.tail.0', ('encoder', 'tail')))

  d = 'denoise_fn'
  num_levels = len(cfg.channel_multiplier)
  m.update(_linear_entries(f'{d}.noise_level_mlp.1', ('noise_mlp', 'fc1')))
  m.update(_linear_entries(f'{d}.noise_level_mlp.3', ('noise_mlp', 'fc2')))

  # LR conditioning: level 0's shift/scale and the last down layer are never consumed.
  lc = ('lr_conditioning',)
  m[f'{d}.conv_body_first.0.weight'] = (lc + ('first', 'conv', 'kernel'), _conv)
  m[f'{d}.conv_body_first.1.bias'] = (lc + ('first', 'act', 'bias'), _same)
  for l in range(1, num_levels):
    m[f'{d}.conv_body_down.{l - 1}.1.weight'] = (lc + ('down', l - 1, 'conv', 'kernel'), _conv)
    m[f'{d}.conv_body_down.{l - 1}.2.bias'] = (lc + ('down', l - 1, 'act', 'bias'), _same)
    m.update(_conv_entries(f'{d}.condition_shift.{l}.0', lc + ('shift', l - 1)))
    m.update(_linear_entries(f'{d}.condition_scale1.{l}', lc + ('scale1', l - 1)))
    m.update(_linear_entries(f'{d}.condition_scale2.{l}', lc + ('scale2', l - 1)))

  # U-Net: the official `downs`, `mid`, `ups` and `final_conv`, from the layout IDM is built from.
  for spec in unet_layout.unet_layout(cfg).specs():
    m.update(_unet_entries(spec, cfg))

  ignored = [
      r'encoder\.(sub_mean|add_mean)\..*', r'imnet\..*',
      rf'{d}\.(final_down1|final_down2|final_linear|final_styleconv)\..*',
      rf'{d}\.(condition_scale1|condition_scale2|condition_shift)\.0\..*',
      rf'{d}\.conv_body_down\.{num_levels - 1}\..*',
      rf'{d}\.ups\.\d+\.style\.(weight|modulated_conv\..*)',
      '(' + '|'.join(SCHEDULE_BUFFERS) + ')',
  ]
  return m, ignored


def load_state_dict(path: paths.PathLike) -> dict[str, np.ndarray]:
  """Read an official state dict from `.pth` (needs torch) or `.npz` (key -> array), local or
  a URI."""
  path = paths.resolve(path)
  if not path.is_file():
    raise FileNotFoundError(f'checkpoint {path} does not exist; pass the official *_gen.pth '
                            'or an .npz of its state dict.')
  if path.suffix == '.npz':
    with path.open('rb') as f, np.load(f) as data:
      arrays = {k: data[k] for k in data.files}
    # Fixture files keep the state dict under 'state/'; plain exports do not.
    if any(k.startswith('state/') for k in arrays):
      arrays = {k[len('state/'):]: v for k, v in arrays.items() if k.startswith('state/')}
  else:
    try:
      import torch  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError(f'reading {path} needs PyTorch: `pip install "idm_jax[torch]"`, or '
                        'export the state dict to .npz first.') from e
    with path.open('rb') as f:
      obj = torch.load(f, map_location='cpu', weights_only=True)
    if isinstance(obj, dict) and 'state_dict' in obj:
      obj = obj['state_dict']
    arrays = {k: v.detach().cpu().numpy() for k, v in obj.items()}
  return {k[len('module.'):] if k.startswith('module.') else k: np.asarray(v)
          for k, v in arrays.items()}


def convert_state_dict(state_dict: dict[str, np.ndarray], model: nnx.Module,
                       cfg: ml_collections.ConfigDict) -> nnx.State:
  """Map an official state dict onto `model`'s parameters; returns the new Param state.

  Raises CheckpointMismatch listing every missing, unexpected or mis-shaped key.
  """
  key_map, ignored = official_key_map(cfg)
  ignore_re = re.compile('|'.join(f'(?:{p})' for p in ignored))
  params = nnx.state(model, nnx.Param)
  ours = {path: var for path, var in nnx.to_flat_state(params)}
  problems, new = [], {}
  for key in sorted(state_dict):
    if key in key_map:
      path, transform = key_map[key]
      value = transform(np.asarray(state_dict[key], np.float32))
      target = ours.get(path)
      if target is None:
        problems.append(f'{key}: maps to {path}, which this config does not build')
      elif target.shape != value.shape:
        problems.append(f'{key}: checkpoint shape {state_dict[key].shape} (as ours '
                        f'{value.shape}) but the config builds {target.shape}')
      else:
        new[path] = value
    elif not ignore_re.fullmatch(key):
      problems.append(f'{key}: unexpected key (shape {np.shape(state_dict[key])})')
  for key, (path, _) in key_map.items():
    if key not in state_dict:
      problems.append(f'{key}: missing from the checkpoint (the config needs {ours[path].shape})')
  unmapped = set(ours) - {path for path, _ in key_map.values()}
  if unmapped:
    raise AssertionError(f'internal: parameters with no official key: {sorted(unmapped)[:5]}')
  if problems:
    shown = '\n  '.join(problems[:20])
    more = f'\n  ... and {len(problems) - 20} more' if len(problems) > 20 else ''
    raise CheckpointMismatch(
        f'{len(problems)} problem(s) loading the official state dict; check that the model '
        f'config matches the checkpoint:\n  {shown}{more}')
  for path, var in ours.items():
    var.set_value(jnp.asarray(new[path]))
  return params


def model_config_from_official(official: dict) -> ml_collections.ConfigDict:
  """Our model config from an official network description.

  `official` has the official JSON's `unet` section ({inner_channel, channel_multiplier,
  attn_res, res_blocks, dropout, norm_groups, image_size}) and optionally `encoder`
  ({n_resblocks, n_feats}; the official `define_G` hard-codes 16 and 64).
  """
  unet, encoder = official['unet'], official.get('encoder', {})
  cfg = model_config.default_model_config()
  cfg.inner_channel = int(unet['inner_channel'])
  cfg.channel_multiplier = tuple(int(m) for m in unet['channel_multiplier'])
  cfg.attn_res = tuple(int(r) for r in unet['attn_res'])
  cfg.res_blocks = int(unet['res_blocks'])
  cfg.dropout = float(unet.get('dropout', 0.0))
  cfg.norm_groups = int(unet.get('norm_groups') or 32)
  cfg.image_size = int(unet.get('image_size', official.get('diffusion', {}).get('image_size')))
  cfg.encoder_blocks = int(encoder.get('n_resblocks', 16))
  cfg.encoder_features = int(encoder.get('n_feats', 64))
  return cfg
