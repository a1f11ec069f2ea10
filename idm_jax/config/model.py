"""Model hyper-parameters: the fields `IDM` reads from `config.model`."""
import ml_collections

COMPUTE_DTYPES = ('float32', 'bfloat16')
MATMUL_PRECISIONS = ('default', 'high', 'highest')


def default_model_config() -> ml_collections.ConfigDict:
  """The official face model (configs/ffhq_16_128.py in the official release)."""
  c = ml_collections.ConfigDict()
  # SR3 U-Net.
  c.inner_channel = 64
  c.channel_multiplier = (1, 2, 4, 8, 8)
  c.attn_res = (16,)  # Resolutions (of `image_size`, halved per level) that get self-attention.
  c.res_blocks = 2
  c.dropout = 0.2
  c.norm_groups = 32
  c.image_size = 128  # Only decides which levels get attention; any output size works.
  # EDSR-baseline encoder (the official `define_G` hard-codes 16 blocks of 64 features).
  c.encoder_blocks = 16
  c.encoder_features = 64
  # Implicit upsampler: LIIF-style coordinate MLP. The official preset: one hidden layer of 256,
  # no activation, no feature unfolding, no local ensemble, no cell decoding.
  c.implicit_hidden = (256,)
  c.implicit_activation = 'none'  # 'none' | 'relu' | 'gelu' | 'silu', between MLP layers.
  c.feat_unfold = False
  c.local_ensemble = False
  c.cell_decode = False
  # Scale input: p = (scale - 1) / (max_scale - 1), so p = 1 at the top of the training range
  # (official faces: 16 -> 128, so max_scale = 8).
  c.max_scale = 8.0
  c.compute_dtype = 'float32'  # 'float32' | 'bfloat16'; parameters stay float32.
  # XLA's precision for every convolution and matmul of the network: 'default' (TF32 for
  # float32 on NVIDIA GPUs, bf16 passes on TPUs), 'high' or 'highest' (true float32: what the
  # parity contract is defined at). Changes speed and rounding only, not the parameters.
  c.matmul_precision = 'default'
  return c


def validate(cfg: ml_collections.ConfigDict) -> None:
  """Fail early, naming the field, on settings the network cannot be built with."""
  if len(cfg.channel_multiplier) < 2:
    raise ValueError('model.channel_multiplier needs at least two levels (one upsampling).')
  if cfg.res_blocks < 1:
    raise ValueError(f'model.res_blocks={cfg.res_blocks}: the U-Net needs >= 1 block per level.')
  for m in (1, *cfg.channel_multiplier):
    if (cfg.inner_channel * m) % cfg.norm_groups:
      raise ValueError(f'model.norm_groups={cfg.norm_groups} does not divide '
                       f'{cfg.inner_channel * m} channels; pick a divisor of inner_channel.')
  if cfg.matmul_precision not in MATMUL_PRECISIONS:
    raise ValueError(f'model.matmul_precision={cfg.matmul_precision!r}: use one of '
                     f'{list(MATMUL_PRECISIONS)}.')
  if cfg.compute_dtype not in COMPUTE_DTYPES:
    raise ValueError(f'model.compute_dtype={cfg.compute_dtype!r}: use one of '
                     f'{list(COMPUTE_DTYPES)}.')
