"""The official face model (configs/ffhq_16_128.py) distilled into a few-step student, on a GPU
node.

  idm-jax convert --torch_checkpoint=I640000_E37_gen.pth --config=configs/ffhq_16_128.py \\
      --output=runs/ffhq_official
  idm-jax distill --config=configs/ffhq_16_128_distill.py --teacher=runs/ffhq_official \\
      --workdir=runs/ffhq_distill --config.data.path=/data/ffhq/hr_128 \\
      --config.data.eval.path=/data/celebahq/hr_128

The teacher: 20 DDIM steps with eta 1 on the trailing grid, projected onto the PIL-bicubic LR at
every step; the student learns the mean of its outputs (L2) at the teacher's steps 0, 5, 10 and 15
(its sampler reads 0 and 15), at every scale x1..x8 of the face data. Validation: CelebA-HQ x8
with 4 network evaluations.
The README gives the cost estimate.
"""
import ml_collections

from idm_jax.config import loading


def get_config(arg=None) -> ml_collections.ConfigDict:
  c = loading.sibling(__file__, 'ffhq_16_128.py', arg)
  c.distill.teacher = 'runs/ffhq_official'
  c.distill.teacher_sampler = 'ddim'
  c.distill.teacher_eta = 1.0
  c.distill.teacher_steps = 20
  c.distill.loss = 'l2'

  c.train.num_steps = 20_000
  c.train.ema_decay = 0.999
  c.train.ema_start_step = 1000
  c.optim.learning_rate = 2e-5
  c.optim.warmup_steps = 500
  c.checkpoint.every_steps = 2000
  c.eval.every_steps = 2000

  c.sampler.name = 'distilled'
  c.sampler.steps = 4
  return c
