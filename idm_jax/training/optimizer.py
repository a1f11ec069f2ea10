"""The optimizer: Adam (official) with warm-up, a decay schedule, clipping and weight decay."""
import ml_collections
import optax


def learning_rate_schedule(config: ml_collections.ConfigDict, num_steps: int) -> optax.Schedule:
  """Linear warm-up from 0 over `warmup_steps`, then constant, cosine or linear decay."""
  peak, warmup = config.learning_rate, config.warmup_steps
  decay_steps = max(num_steps - warmup, 1)
  end = peak * config.end_lr_fraction
  if config.schedule == 'constant':
    after = optax.constant_schedule(peak)
  elif config.schedule == 'cosine':
    after = optax.cosine_decay_schedule(peak, decay_steps, alpha=config.end_lr_fraction)
  elif config.schedule == 'linear':
    after = optax.linear_schedule(peak, end, decay_steps)
  else:
    raise ValueError(f'optim.schedule = {config.schedule!r}: use constant, cosine or linear.')
  if not warmup:
    return after
  return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), after], [warmup])


def make_optimizer(config: ml_collections.ConfigDict,
                   num_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """(transformation, learning-rate schedule) from the `optim` config section."""
  schedule = learning_rate_schedule(config, num_steps)
  if config.name == 'adam':
    opt = optax.adam(schedule, b1=config.b1, b2=config.b2, eps=config.eps)
  elif config.name == 'adamw':
    opt = optax.adamw(schedule, b1=config.b1, b2=config.b2, eps=config.eps,
                      weight_decay=config.weight_decay)
  else:
    raise ValueError(f'optim.name = {config.name!r}: use adam or adamw.')
  if config.grad_clip_norm > 0:
    opt = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), opt)
  return opt, schedule
