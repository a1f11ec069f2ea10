"""The training tests' micro experiment, also a config file for `python -m idm_jax.main` runs and
the benchmarks' smoke runs. Imports only the config layer: the accelerator check loads it where
grain (the input pipeline) is not installed."""
import ml_collections

from idm_jax.config import experiment as config_lib


def micro_config() -> ml_collections.ConfigDict:
  """LR 8 -> HR 16 (one bucket), batch 8 on one device, dropout on.

  One device keeps the runs cheap on two cores; `test_sharding` sets its own meshes, and its
  one-device program is this one (the compilation cache shares it).
  """
  c = config_lib.default_config()
  m = c.model
  m.inner_channel = 8
  m.channel_multiplier = (1, 2)
  m.attn_res = ()
  m.res_blocks = 1
  m.dropout = 0.1
  m.norm_groups = 4
  m.image_size = 16
  m.encoder_blocks = 1
  m.encoder_features = 8
  m.implicit_hidden = (8,)
  m.max_scale = 2.0
  d = c.data
  d.lr_size = 8
  d.min_hr_size = 16
  d.max_hr_size = 16
  d.num_workers = 0
  d.prefetch = 2
  c.eval.num_images = 1
  d.eval.crop_size = 16
  c.train.batch_size = 8
  c.train.num_steps = 8
  c.train.ema_decay = 0.9
  c.train.ema_start_step = 2
  c.optim.learning_rate = 1e-3
  c.optim.warmup_steps = 2
  c.mesh.data = 1
  c.mesh.fsdp_min_size = 0
  c.checkpoint.every_steps = 4
  c.checkpoint.keep = 10
  c.logging.log_every_steps = 2
  c.logging.progress_every_secs = 3600.0
  c.eval.every_steps = 0
  c.eval.at_end = False
  c.eval.scales = (2.0,)
  c.sampler.steps = 2
  return c


def get_config(arg=None):
  del arg
  return micro_config()
