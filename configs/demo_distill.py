"""Distils the README's demo model (configs/demo.py, trained into runs/demo) into a few-step
student.

  python -m idm_jax.main --config=configs/demo_distill.py --workdir=runs/demo_distill \
      [--config.distill.teacher=runs/demo/checkpoints]

The student starts from the demo's EMA weights. The teacher samples 20 DDIM steps with eta 1 (the
demo's stochastic sampler, on the trailing grid, projected onto the LR input at every step); from
the teacher's own points at steps 0, 5, 10 and 15 (the trailing 4-step grid; the sampler reads
steps 0 and 15, t = 1999 and 499) the student learns the teacher's output with the L2 loss, i.e.
the mean of the outputs reachable from each point, at continuous scales x2..x4, for 600 steps.
Sampling (and validation) takes 3 network evaluations: the blind estimate and an antithetic pair
of readings at the refinement level; pass --steps=1 (fastest) or 4 to `idm-jax evaluate` /
`idm-jax upscale` for others. Its time, its quality against the teacher and the deterministic
variant (teacher_sampler 'dpm_solver++', teacher_eta 0, loss 'l1') are measured in the README.
"""
import ml_collections

from idm_jax.config import loading


def get_config(arg=None) -> ml_collections.ConfigDict:
  c = loading.sibling(__file__, 'demo.py', arg)
  c.distill.teacher = 'runs/demo/checkpoints'
  c.distill.teacher_sampler = 'ddim'
  c.distill.teacher_eta = 1.0
  c.distill.teacher_steps = 20
  c.distill.loss = 'l2'

  c.train.num_steps = 600
  c.train.ema_decay = 0.98
  c.train.ema_start_step = 100
  c.optim.learning_rate = 5e-4
  c.optim.warmup_steps = 20
  c.checkpoint.every_steps = 200

  c.sampler.name = 'distilled'
  c.sampler.steps = 3
  c.sampler.mean_of = 1
  return c
