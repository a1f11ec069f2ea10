"""DIV2K + Flickr2K (config/df2k_liifsr3_x4.json): 40x40 LR patches, HR up to 160x160 (x4).

The official x4 LR images are used as they are; per batch the HR target side is drawn between
40 (x1) and 160 (x4). Same network as the face model. Batch 64, Adam 1e-4, 1.5M steps.
Validation: DIV2K valid at x2, x3 (HR degraded by MATLAB bicubic) and x4 (official LR).

  python -m idm_jax.main --config=configs/df2k_x4.py --workdir=runs/df2k \\
      --config.data.path=/data/DF2K/HR --config.data.lr_path=/data/DF2K/LR_bicubic/X4 \\
      --config.data.eval.path=/data/DIV2K/DIV2K_valid_HR \\
      --config.data.eval.lr_path=/data/DIV2K/DIV2K_valid_LR_bicubic/X4
"""
import ml_collections

from idm_jax.config import experiment as config_lib


def get_config(arg=None) -> ml_collections.ConfigDict:
  del arg
  c = config_lib.default_config()
  c.model.max_scale = 4.0
  d = c.data
  d.source = 'folder'
  d.path = 'datasets/DF2K/HR'
  d.lr_path = 'datasets/DF2K/LR_bicubic/X4'
  d.lr_scale = 4
  d.degradation = 'matlab_bicubic'
  d.lr_size = 40
  d.min_hr_size = 40
  d.max_hr_size = 160
  d.num_workers = 8
  d.eval.path = 'datasets/DIV2K/DIV2K_valid_HR'
  d.eval.lr_path = 'datasets/DIV2K/DIV2K_valid_LR_bicubic/X4'
  c.train.batch_size = 64
  c.train.num_steps = 1_500_000
  c.optim.learning_rate = 1e-4
  c.checkpoint.every_steps = 5000
  c.eval.every_steps = 5000
  c.eval.scales = (2.0, 3.0, 4.0)
  c.eval.num_images = 4  # Whole 2K images, sampled in tiles: keep the periodic pass short.
  return c
