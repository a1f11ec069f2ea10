"""The unit tests' network: small enough for a CPU, with every part of the real one present."""
import ml_collections

from idm_jax.config.model import default_model_config


def tiny_model_config() -> ml_collections.ConfigDict:
  """A network small enough for unit tests on a CPU (same structure, every part present)."""
  c = default_model_config()
  c.inner_channel = 8
  c.channel_multiplier = (1, 2, 2)
  c.attn_res = (8,)
  c.res_blocks = 1
  c.dropout = 0.0
  c.norm_groups = 4
  c.image_size = 32
  c.encoder_blocks = 1
  c.encoder_features = 8
  c.implicit_hidden = (16,)
  c.max_scale = 4.0
  return c
