"""The project's one checkpoint layout, in Orbax: what training writes and everything restores.

A step directory holds the items
  params       model parameters (nested dict of arrays),
  ema_params   their exponential moving average (what evaluation samples from),
  train_state  optimizer state, step and PRNG key (training checkpoints only),
  metadata     JSON: the full experiment config and the model config it was built with.
Orbax writes each step to a temporary directory and renames it when complete (a local disk), or
writes a commit file last (gs://, where a rename is a copy), so a crash or a kill never leaves a
half-written step where a reader would take it for a good one. No other storage holds
checkpoints (`paths.checkpoint_dir`).
"""
import json
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp
from flax import nnx
from orbax.checkpoint import checkpoint_managers

from idm_jax import paths

FORMAT = 'idm_jax/1'
BEST_METRIC = 'val_psnr'


def make_manager(directory: paths.PathLike, *, keep: int = 3, keep_best: int = 1,
                 async_save: bool = True, read_only: bool = False) -> ocp.CheckpointManager:
  """A manager keeping the last `keep` steps plus the `keep_best` best by validation PSNR."""
  policies = [checkpoint_managers.LatestN(n=keep)]
  if keep_best:
    policies.append(checkpoint_managers.BestN(
        get_metric_fn=lambda metrics: metrics[BEST_METRIC], n=keep_best,
        keep_checkpoints_without_metrics=False))
  # A step is whole once Orbax renames its temporary folder (local) or writes its commit file
  # (gs://, where a rename would be a copy); the only storages `paths.checkpoint_dir` admits.
  options = ocp.CheckpointManagerOptions(
      preservation_policy=checkpoint_managers.AnyPreservationPolicy(policies),
      enable_async_checkpointing=async_save, read_only=read_only, create=not read_only,
      best_fn=lambda metrics: metrics[BEST_METRIC], best_mode='max')
  return ocp.CheckpointManager(paths.checkpoint_dir(directory), options=options)


def metadata_for(config: ml_collections.ConfigDict) -> dict[str, Any]:
  return {'format': FORMAT, 'config': json.loads(config.to_json_best_effort()),
          'model': json.loads(config.model.to_json_best_effort())}


def _pure(params: nnx.State | dict[str, Any]) -> dict[str, Any]:
  """Parameters as a pure nested dict of arrays (the form the trainer already keeps them in)."""
  return nnx.to_pure_dict(params) if isinstance(params, nnx.State) else params


def save(manager: ocp.CheckpointManager, step: int, *, params: nnx.State | dict[str, Any],
         ema_params: nnx.State | dict[str, Any], config: ml_collections.ConfigDict,
         train_state: Any = None, metrics: dict[str, float] | None = None,
         force: bool = False) -> bool:
  """Queue one step for writing (asynchronous unless the manager says otherwise).

  `params` / `ema_params`: an `nnx.State` of parameters or its pure dict.
  """
  items = {'params': ocp.args.StandardSave(_pure(params)),
           'ema_params': ocp.args.StandardSave(_pure(ema_params)),
           'metadata': ocp.args.JsonSave(metadata_for(config))}
  if train_state is not None:
    items['train_state'] = ocp.args.StandardSave(train_state)
  return manager.save(step, args=ocp.args.Composite(**items), metrics=metrics, force=force)


def read_metadata(manager: ocp.CheckpointManager, step: int) -> dict[str, Any]:
  return manager.restore(step, args=ocp.args.Composite(metadata=ocp.args.JsonRestore()))[
      'metadata']


def _abstract(tree: Any) -> Any:
  """Shapes, dtypes and shardings of a live tree: Orbax restores straight into that layout."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                                     sharding=getattr(x, 'sharding', None)), tree)


def _check_model_config(stored: dict[str, Any], cfg: ml_collections.ConfigDict,
                        where: str) -> None:
  ours = json.loads(cfg.to_json_best_effort())
  # These do not change the parameters; a checkpoint serves either way.
  free = {'compute_dtype', 'matmul_precision', 'dropout'}
  diffs = [f'{k}: checkpoint {stored.get(k)!r}, config {ours.get(k)!r}'
           for k in sorted(set(stored) | set(ours))
           if k not in free and stored.get(k) != ours.get(k)]
  if diffs:
    raise ValueError(f'{where} was written for another network; its model config differs in '
                     + '; '.join(diffs) + '. Use the config the checkpoint was trained with.')


def _check_sampler(meta: dict[str, Any], sampler_name: str, where: str) -> None:
  """A distilled student's output is read by the 'distilled' sampler alone, and only it."""
  student = bool(meta.get('config', {}).get('distill', {}).get('teacher'))
  if student and sampler_name != 'distilled':
    raise ValueError(f'{where} is a distilled student (config.distill.teacher was set), which '
                     f"the {sampler_name!r} sampler would misread: pass --sampler distilled "
                     "(sampler.name = 'distilled') and --steps, its network evaluations (1 or "
                     'more).')
  if not student and sampler_name == 'distilled':
    raise ValueError(f"{where} is not a distilled student: the 'distilled' sampler would misread "
                     'its noise prediction; pass --sampler dpm_solver++, ddim or ddpm.')


def _check_teacher(meta: dict[str, Any], where: str) -> None:
  """A teacher predicts noise: a distilled student does not, so it cannot teach."""
  teacher = meta.get('config', {}).get('distill', {}).get('teacher')
  if teacher:
    raise ValueError(f'{where} is a distilled student (of {teacher}), which predicts no noise '
                     'and so cannot teach: distil from a noise-predicting checkpoint such as '
                     f'{teacher}.')


def restore_params(directory: paths.PathLike, model: nnx.Module, *, use_ema: bool = True,
                   step: int | None = None, sampler_name: str | None = None) -> int:
  """Load (EMA) parameters from `directory` into `model`, laid out as its own; returns step.

  Works for any device layout: the arrays take the shardings of `model`'s parameters.
  `sampler_name`, if given, must suit the checkpoint: 'distilled' for a distilled student only.
  """
  params = nnx.state(model, nnx.Param)
  restored, step = restore_param_dict(directory, nnx.to_pure_dict(params), model.config,
                                      use_ema=use_ema, step=step, sampler_name=sampler_name)
  nnx.replace_by_pure_dict(params, restored)
  nnx.update(model, params)
  return step


def restore_param_dict(directory: paths.PathLike, target: Any,
                       model_config: ml_collections.ConfigDict, *, use_ema: bool = True,
                       step: int | None = None, sampler_name: str | None = None,
                       teacher: bool = False) -> tuple[dict[str, Any], int]:
  """(EMA) parameters of `directory` as a pure dict laid out like `target` (arrays or
  `jax.ShapeDtypeStruct`s with shardings), and the step; `sampler_name` as `restore_params`;
  `teacher`: for a distillation, which a distilled student cannot teach."""
  directory = paths.checkpoint_dir(directory)
  if not directory.is_dir():
    raise FileNotFoundError(f'checkpoint directory {directory} does not exist; pass the '
                            'workdir/checkpoints folder of a run or the output of `idm-jax convert`.')
  manager = make_manager(directory, read_only=True, async_save=False)
  step = manager.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f'{directory} holds no complete checkpoint step.')
  where = f'checkpoint {directory} (step {step})'
  meta = read_metadata(manager, step)
  if meta.get('format') != FORMAT:
    raise ValueError(f'{where} is not an idm_jax checkpoint (format {meta.get("format")!r}).')
  _check_model_config(meta['model'], model_config, where)
  if sampler_name is not None:
    _check_sampler(meta, sampler_name, where)
  if teacher:
    _check_teacher(meta, where)
  name = 'ema_params' if use_ema else 'params'
  restored = manager.restore(step, args=ocp.args.Composite(
      **{name: ocp.args.StandardRestore(_abstract(target))}))[name]
  manager.close()
  return restored, step


def restore_training(manager: ocp.CheckpointManager, step: int, *, params: Any, ema_params: Any,
                     train_state: Any, model_config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Everything a resumed run needs from `step`: {'params', 'ema_params', 'train_state'}.

  The targets (pure dicts of live arrays or of `jax.ShapeDtypeStruct`s with shardings) give the
  layout to restore into, so a checkpoint written on one mesh loads on another.
  """
  where = f'checkpoint {manager.directory} (step {step})'
  meta = read_metadata(manager, step)
  if meta.get('format') != FORMAT:
    raise ValueError(f'{where} is not an idm_jax checkpoint (format {meta.get("format")!r}).')
  _check_model_config(meta['model'], model_config, where)
  if 'train_state' not in manager.item_metadata(step):
    raise ValueError(f'{where} holds no optimizer state (an export or a converted official '
                     'checkpoint): it can be evaluated but not resumed.')
  targets = {'params': params, 'ema_params': ema_params, 'train_state': train_state}
  restored = manager.restore(step, args=ocp.args.Composite(
      **{k: ocp.args.StandardRestore(_abstract(v)) for k, v in targets.items()}))
  return {k: restored[k] for k in targets}
