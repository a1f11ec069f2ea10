"""The experiment config: every section with its defaults, and a check of any config against them.

`configs/*.py` start from `default_config()` and change values; `validate` then rejects a field
the defaults do not have (a typo) or a value of the wrong type, naming the field, before
anything starts.
"""
from typing import Any

import ml_collections

from idm_jax.config import data as data_config_lib
from idm_jax.config import diffusion as diffusion_config_lib
from idm_jax.config import distill as distill_config_lib
from idm_jax.config import model as model_config_lib

PARAM_SHARDINGS = ('replicated', 'fsdp')
NONFINITE = ('stop', 'skip')
LR_SCHEDULES = ('constant', 'cosine', 'linear')
OPTIMIZERS = ('adam', 'adamw')


def default_config() -> ml_collections.ConfigDict:
  """Every field the trainer reads, at the official face setting where one exists."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.model = model_config_lib.default_model_config()
  c.diffusion = diffusion_config_lib.default_diffusion_config()
  c.sampler = diffusion_config_lib.default_sampler_config()  # Validation sampling.
  c.data = data_config_lib.default_data_config()
  c.distill = distill_config_lib.default_distill_config()

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 32  # Global, over all processes and devices.
  c.train.num_steps = 1_000_000
  c.train.nonfinite = 'stop'  # A NaN/inf loss or gradient: 'stop' the run or 'skip' the step.
  c.train.ema_decay = 0.9999
  c.train.ema_start_step = 5000  # Before it the EMA copies the parameters.

  c.optim = ml_collections.ConfigDict()
  c.optim.name = 'adam'  # 'adam' (official) | 'adamw' (decoupled weight decay).
  c.optim.learning_rate = 1e-4
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999
  c.optim.eps = 1e-8
  c.optim.weight_decay = 0.0  # adamw only.
  c.optim.warmup_steps = 0  # Linear warm-up from 0.
  c.optim.schedule = 'constant'  # After warm-up: 'constant' | 'cosine' | 'linear' decay.
  c.optim.end_lr_fraction = 0.0  # cosine/linear: final rate as a fraction of the peak.
  c.optim.grad_clip_norm = 0.0  # Clip the global gradient norm to this; 0 = off (official).

  c.mesh = ml_collections.ConfigDict()
  c.mesh.data = -1  # Devices on the 'data' axis; -1 = all.
  c.mesh.param_sharding = 'replicated'  # Or 'fsdp': parameters and optimizer state split.
  c.mesh.fsdp_min_size = 2**16  # fsdp: arrays with fewer elements stay replicated.

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every_steps = 3000
  c.checkpoint.keep = 3  # Most recent steps kept.
  c.checkpoint.keep_best = 1  # Plus the best by validation PSNR.
  c.checkpoint.async_save = True
  c.checkpoint.preemption_sync_steps = 10  # Multi-host: how often hosts agree on a stop signal.

  c.logging = ml_collections.ConfigDict()
  c.logging.log_every_steps = 200
  c.logging.progress_every_secs = 60.0
  c.logging.profile_steps = 0  # > 0: a profiler trace of this many steps from step 10 (TensorBoard).

  c.eval = ml_collections.ConfigDict()
  # One evaluator serves validation during training, `--mode=eval` and `idm-jax evaluate`: the
  # same images, scales, keys and metrics, so the numbers agree wherever they are computed.
  c.eval.every_steps = 3000  # Validation pass during training; 0 = only at the end.
  c.eval.at_end = True  # Final pass of training: WORKDIR/eval, as `--mode=eval` writes it.
  c.eval.scales = (8.0,)  # The official face validation: LR 16 -> HR 128.
  c.eval.num_images = 8  # The first images of the data.eval set (data.eval.crop_size crops them).
  c.eval.num_samples = 1  # Samples per image and scale (metrics: mean and spread over them).
  c.eval.per_device_batch = 8  # Requests per device in one sampling call.
  return c


def _type_name(value: Any) -> str:
  return type(value).__name__


def _check_value(path: str, value: Any, default: Any) -> None:
  """Raises TypeError unless `value` has the type of `default` (int is accepted for float)."""
  if isinstance(default, bool) or isinstance(value, bool):
    ok = isinstance(value, bool) and isinstance(default, bool)
  elif isinstance(default, float):
    ok = isinstance(value, (int, float))
  elif isinstance(default, (tuple, list)):
    if not isinstance(value, (tuple, list)):
      ok = False
    else:
      ok = True
      if default:
        for i, item in enumerate(value):
          _check_value(f'{path}[{i}]', item, default[0])
  else:
    ok = isinstance(value, type(default))
  if not ok:
    raise TypeError(f'config field {path} = {value!r} is a {_type_name(value)}; '
                    f'expected a {_type_name(default)} like the default {default!r}.')


def check_schema(config: ml_collections.ConfigDict, reference: ml_collections.ConfigDict,
                 prefix: str = '') -> None:
  """Every field of `config` exists in `reference` with the same type, and none is missing."""
  for key in config.keys():
    path = prefix + key
    if key not in reference:
      raise ValueError(f'unknown config field {path!r}; fields here: '
                       f'{", ".join(sorted(reference.keys()))}.')
    value, default = config[key], reference[key]
    if isinstance(default, ml_collections.ConfigDict):
      if not isinstance(value, ml_collections.ConfigDict):
        raise TypeError(f'config field {path} must be a section, got {value!r}.')
      check_schema(value, default, path + '.')
    else:
      _check_value(path, value, default)
  missing = sorted(set(reference.keys()) - set(config.keys()))
  if missing:
    raise ValueError(f'config lacks field(s) {", ".join(prefix + k for k in missing)}.')


def _choice(path: str, value: str, choices: tuple[str, ...]) -> None:
  if value not in choices:
    raise ValueError(f'config field {path} = {value!r}: choose one of {choices}.')


def validate(config: ml_collections.ConfigDict) -> None:
  """Schema, then the consistency rules of each section; errors name the field to fix."""
  check_schema(config, default_config())
  model_config_lib.validate(config.model)
  data_config_lib.validate(config.data)
  _choice('train.nonfinite', config.train.nonfinite, NONFINITE)
  _choice('optim.name', config.optim.name, OPTIMIZERS)
  _choice('optim.schedule', config.optim.schedule, LR_SCHEDULES)
  _choice('mesh.param_sharding', config.mesh.param_sharding, PARAM_SHARDINGS)
  _choice('sampler.name', config.sampler.name, diffusion_config_lib.SAMPLERS)
  _choice('sampler.consistency', config.sampler.consistency,
          ('auto', *diffusion_config_lib.CONSISTENCY_METHODS))
  distill_config_lib.validate(config)
  positive = {'train.batch_size': config.train.batch_size, 'train.num_steps': config.train.num_steps,
              'optim.learning_rate': config.optim.learning_rate,
              'checkpoint.every_steps': config.checkpoint.every_steps,
              'checkpoint.keep': config.checkpoint.keep,
              'checkpoint.preemption_sync_steps': config.checkpoint.preemption_sync_steps,
              'logging.log_every_steps': config.logging.log_every_steps}
  for path, value in positive.items():
    if value <= 0:
      raise ValueError(f'config field {path} = {value} must be positive.')
  if not 0 <= config.train.ema_decay < 1:
    raise ValueError(f'train.ema_decay = {config.train.ema_decay} must be in [0, 1).')
  if config.optim.weight_decay and config.optim.name != 'adamw':
    raise ValueError('optim.weight_decay is only applied by optim.name = "adamw".')
  if config.optim.warmup_steps < 0 or config.eval.every_steps < 0:
    raise ValueError('optim.warmup_steps and eval.every_steps must be >= 0.')
  for field in ('num_images', 'num_samples', 'per_device_batch'):
    if config.eval[field] < 1:
      raise ValueError(f'eval.{field} = {config.eval[field]} must be >= 1.')
  if config.logging.profile_steps < 0:
    raise ValueError(f'logging.profile_steps = {config.logging.profile_steps} must be >= 0.')
  if config.mesh.data == 0 or config.mesh.data < -1:
    raise ValueError(f'mesh.data = {config.mesh.data}: a device count, or -1 for all.')
  if any(s < 1 for s in config.eval.scales) or not config.eval.scales:
    raise ValueError(f'eval.scales = {config.eval.scales}: give scales >= 1.')
  # Training feeds p = (hr - lr) / (max_hr - lr); sampling p = (scale - 1) / (max_scale - 1).
  data_max_scale = config.data.max_hr_size / config.data.lr_size
  if abs(config.model.max_scale - data_max_scale) > 1e-6:
    raise ValueError(f'model.max_scale = {config.model.max_scale} must equal data.max_hr_size / '
                     f'data.lr_size = {data_max_scale:g}, or p means different scales in training '
                     'and sampling.')
