"""LSUN cats (config/cat_liifsr3_x16.json): 16 -> up to 256, continuous scale x1..x16.

Folders of 256x256 cats (the official `prepare_data.py` output); LR by PIL bicubic. Same network
as the face model. Batch 64, Adam 2e-5, 1.5M steps.

  python -m idm_jax.main --config=configs/cat_x16.py --workdir=runs/cat \\
      --config.data.path=/data/cat_train/hr_256 --config.data.eval.path=/data/cat_test/hr_256
"""
import ml_collections

from idm_jax.config import experiment as config_lib


def get_config(arg=None) -> ml_collections.ConfigDict:
  del arg
  c = config_lib.default_config()
  c.model.max_scale = 16.0
  d = c.data
  d.source = 'folder'
  d.path = 'datasets/cat_train/hr_256'
  d.degradation = 'pil_bicubic'
  d.lr_size = 16
  d.min_hr_size = 16
  d.max_hr_size = 256
  d.num_workers = 8
  d.eval.path = 'datasets/cat_test/hr_256'
  c.train.batch_size = 64
  c.train.num_steps = 1_500_000
  c.optim.learning_rate = 2e-5
  c.checkpoint.every_steps = 3000
  c.eval.every_steps = 3000
  c.eval.scales = (16.0,)
  c.eval.num_images = 100
  return c
