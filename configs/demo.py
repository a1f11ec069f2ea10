"""The README's main job: a small IDM on the embedded photos, trained and evaluated on a CPU.

Trains on 8x8 LR crops of the scikit-image photos with HR targets of 16, 24 or 32 pixels
(continuous scales x2..x4, three compilations), then samples 96x96 centre crops of the two
held-out photos at x2, x3 and x4 and writes PSNR/SSIM against bicubic (eval/metrics.json) and
the picture LR | bicubic | IDM | HR (eval/comparison.png) into the workdir.

Sampling is stochastic (DDIM with eta = 1, i.e. DDPM's posterior variance on a 10-step grid):
after a few minutes of training the network is still poor at the highest noise levels, and the
fresh noise of each stochastic step washes out those early errors; the deterministic samplers
keep them (the README's demo section has the figures).
"""
import ml_collections

from idm_jax.config import experiment as config_lib


def get_config(arg=None) -> ml_collections.ConfigDict:
  del arg
  c = config_lib.default_config()
  m = c.model
  m.inner_channel = 16
  m.channel_multiplier = (1, 2, 2)
  m.attn_res = ()
  m.res_blocks = 1
  m.dropout = 0.0
  m.norm_groups = 8
  m.image_size = 32
  m.encoder_blocks = 2
  m.encoder_features = 32
  m.implicit_hidden = (64,)
  m.max_scale = 4.0

  d = c.data
  d.source = 'embedded'
  d.lr_size = 8
  d.min_hr_size = 16  # x2 .. x4: HR sides 16, 24 and 32.
  d.max_hr_size = 32
  d.bucket_multiple = 8
  d.degradation = 'matlab_bicubic'
  d.num_workers = 0  # Two cores: the batches are built by a thread of the trainer.
  d.eval.crop_size = 96  # x2, x3, x4 of a 96x96 centre crop: LR 48, 32 and 24.

  c.train.batch_size = 16
  c.train.num_steps = 2000
  c.train.ema_decay = 0.99
  c.train.ema_start_step = 200
  c.optim.learning_rate = 2e-3
  c.optim.warmup_steps = 100
  c.optim.schedule = 'cosine'
  c.optim.grad_clip_norm = 1.0

  c.sampler.name = 'ddim'
  c.sampler.steps = 10
  c.sampler.eta = 1.0
  # The mean of 8 samples of 10 steps, as 4 antithetic pairs (each pair's second sample runs on the
  # negated noise of its first): the work of 4 samples of 20 steps, with more PSNR than 8
  # independent samples (docs/experiments.md), since invented texture cancels within a pair.
  # Every step is projected onto the LR input.
  c.sampler.mean_of = 8
  c.sampler.antithetic = True
  c.checkpoint.every_steps = 500
  c.logging.log_every_steps = 100
  c.logging.progress_every_secs = 30.0
  c.eval.every_steps = 0  # Only the final pass.
  c.eval.scales = (2.0, 3.0, 4.0)
  c.eval.num_images = 2
  return c
