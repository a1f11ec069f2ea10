"""The official face setting (config/ffhq_liifsr3_scaler_16_128.json): FFHQ 16 -> up to 128.

Train on FFHQ, validate on CelebA-HQ, both folders of 128x128 faces (the official
`data/prepare_data.py` output, `hr_128`); the LR comes from the HR by PIL bicubic, as the
official data were made. Batch 32, Adam 1e-4, 1M steps, continuous scale x1..x8 (HR side from
16 to 128 per batch), EMA 0.9999 from step 5000.

  python -m idm_jax.main --config=configs/ffhq_16_128.py --workdir=runs/ffhq \\
      --config.data.path=/data/ffhq/hr_128 --config.data.eval.path=/data/celebahq/hr_128
"""
import ml_collections

from idm_jax.config import experiment as config_lib


def get_config(arg=None) -> ml_collections.ConfigDict:
  del arg
  c = config_lib.default_config()  # Model, schedule, optimizer: the official face values.
  d = c.data
  d.source = 'folder'
  d.path = 'datasets/ffhq/hr_128'
  d.degradation = 'pil_bicubic'
  d.lr_size = 16
  d.min_hr_size = 16
  d.max_hr_size = 128
  d.num_workers = 8
  d.eval.path = 'datasets/celebahq/hr_128'
  c.train.batch_size = 32
  c.train.num_steps = 1_000_000
  c.optim.learning_rate = 1e-4
  c.checkpoint.every_steps = 3000
  c.eval.every_steps = 3000
  c.eval.scales = (8.0,)
  c.eval.num_images = 100  # Official validation: the first 100 CelebA-HQ faces.
  return c
