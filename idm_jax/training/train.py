"""Training and evaluation loop, in sections: mesh, input pipeline, model and optimizer,
checkpoint restore, update step, validation, loop.

The same code runs on one CPU and on many hosts: each process feeds its rows of the global batch,
the step is one `jax.jit` over the mesh, and only process 0 writes logs, reports and pictures
(Orbax coordinates the checkpoint writes of all processes).
"""
import contextlib
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging
from etils import epath
from flax import nnx
from flax import traverse_util

from idm_jax import mesh as mesh_lib
from idm_jax import paths
from idm_jax.checkpoints import store
from idm_jax.config import experiment as config_lib
from idm_jax.data import pipeline
from idm_jax.evaluation import evaluator as evaluator_lib
from idm_jax.evaluation import report
from idm_jax.training import objectives
from idm_jax.training import optimizer as optimizer_lib
from idm_jax.training import preemption
from idm_jax.training import progress as progress_lib
from idm_jax.training import summaries
from idm_jax.training import train_state as train_state_lib
from idm_jax.training import train_step as train_step_lib


_AHEAD = 2  # Steps the host may enqueue beyond the one the device is running.


class NonFiniteError(FloatingPointError):
  """A step produced a NaN/inf loss or gradient and `train.nonfinite` is 'stop'."""


class _StepMonitor:
  """Per-step metrics still on device: checks them for NaN/inf and averages them for logging.

  Reading a step's metrics waits for that step, so they are read only when logging, before a
  checkpoint or validation, and at the end; in between the host only waits when it is _AHEAD
  steps ahead of the device (a non-finite step's update is already skipped on the device).
  """

  def __init__(self, config: ml_collections.ConfigDict, checkpoint_dir: epath.Path,
               manager):
    self._stop = config.train.nonfinite == 'stop'
    self._checkpoint_dir = checkpoint_dir
    self._manager = manager
    self._unchecked: list[tuple[int, dict[str, jax.Array]]] = []
    self._finished: list[dict[str, float]] = []
    self.skipped = 0

  def add(self, step: int, metrics: dict[str, jax.Array]) -> None:
    self._unchecked.append((step, metrics))
    # The host may run _AHEAD steps ahead of the device: the next batches' transfers overlap
    # the running step, and no unbounded queue of work and batch buffers builds up.
    if len(self._unchecked) > _AHEAD:
      jax.block_until_ready(self._unchecked[-_AHEAD - 1][1]['loss'])

  def check(self) -> None:
    """Reads the metrics of every step added since the last check."""
    unchecked, self._unchecked = self._unchecked, []
    for step, values in zip([s for s, _ in unchecked],
                            jax.device_get([m for _, m in unchecked])):
      values = {k: float(v) for k, v in values.items()}
      if values.pop('finite'):
        self._finished.append(values)
        continue
      message = (f'non-finite loss ({values["loss"]}) or gradient norm ({values["grad_norm"]}) '
                 f'at step {step}')
      if self._stop:
        self._manager.wait_until_finished()
        raise NonFiniteError(
            f'{message}: stopping without saving. The last good checkpoint is step '
            f'{self._manager.latest_step()} in {self._checkpoint_dir}. Lower '
            'optim.learning_rate, set optim.grad_clip_norm, check the data, or set '
            'train.nonfinite="skip".')
      self.skipped += 1
      logging.warning('%s: update skipped (%d so far).', message, self.skipped)

  def summary(self) -> dict[str, float]:
    """Means over the finite steps since the last call."""
    self.check()
    finished, self._finished = self._finished, []
    if not finished:
      return {}
    return {k: float(np.mean([m[k] for m in finished])) for k in finished[0]}


def _until_failure_after_stop(batches, stop: preemption.StopRequest):
  """The batches; if they fail once a stop was requested, just ends.

  A scheduler's SIGTERM may reach the input workers too, so the pipeline can die before the
  loop saves: the loop then still saves the state it has.
  """
  try:
    yield from batches
  except Exception:  # pylint: disable=broad-exception-caught
    if not stop.requested:
      raise
    logging.warning('The input pipeline failed after %s; saving and stopping.',
                    stop.signal_name)


def _make_mesh(config: ml_collections.ConfigDict) -> jax.sharding.Mesh:
  mesh = mesh_lib.make_mesh(config.mesh)
  n_data = mesh.shape[mesh_lib.DATA]
  if config.train.batch_size % n_data:
    raise ValueError(f'train.batch_size = {config.train.batch_size} must be a multiple of the '
                     f'{n_data} devices on the data axis (mesh.data).')
  logging.info('Mesh %s over %d process(es).', dict(mesh.shape), jax.process_count())
  return mesh


def _make_objective(config: ml_collections.ConfigDict,
                    layout: train_state_lib.Layout) -> objectives.Objective:
  """Noise prediction; or with `distill.teacher`, distillation from the teacher's EMA weights,
  restored onto the student's layout."""

  def restore_teacher():
    teacher, step = store.restore_param_dict(
        config.distill.teacher, layout.abstract_state.params, config.model, teacher=True)
    logging.info('Distilling the EMA weights of step %d of %s (%s, %d steps) into a student.',
                 step, config.distill.teacher, config.distill.teacher_sampler,
                 config.distill.teacher_steps)
    return teacher, layout.state_shardings.params

  return objectives.make_objective(config, layout.graphdef, restore_teacher)


def _restore_or_create(config, layout, tx, manager,
                       objective: objectives.Objective) -> train_state_lib.TrainState:
  """The newest checkpoint of `manager` on this mesh, or a fresh state (a distillation's from
  the teacher's parameters)."""
  latest = manager.latest_step()
  teacher = objective.arrays if isinstance(objective, objectives.Distillation) else None
  if latest is None:
    logging.info('No checkpoint in %s: starting %s.', manager.directory,
                 'from scratch' if teacher is None else 'from the teacher')
    return train_state_lib.create(config, layout, tx, teacher)
  logging.info('Resuming from step %d of %s.', latest, manager.directory)
  abstract = layout.abstract_state
  restored = store.restore_training(
      manager, latest, params=abstract.params, ema_params=abstract.ema_params,
      train_state=abstract.checkpoint_item(), model_config=config.model)
  item = restored['train_state']
  return train_state_lib.TrainState(
      step=item['step'], params=restored['params'], ema_params=restored['ema_params'],
      opt_state=item['opt_state'], rng=item['rng'])


def _hparams(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The config as flat TensorBoard hyper-parameters ('optim.learning_rate': 1e-4, ...)."""
  flat = traverse_util.flatten_dict(config.to_dict(), sep='.')
  return {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in flat.items()}


class _Validation:
  """The evaluator on the EMA weights, as they lie on the mesh: scalars and pictures to the
  summaries, a report per pass; the final pass also writes WORKDIR/eval, which `--mode=eval` of
  the same checkpoint reproduces."""

  def __init__(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh,
               graphdef: nnx.GraphDef, workdir: epath.Path, writer: summaries.Writer,
               progress: progress_lib.Progress):
    self._evaluator = evaluator_lib.Evaluator(config, mesh)
    self._graphdef = graphdef
    self._workdir = workdir
    self._writer = writer
    self._progress = progress
    self._every = config.eval.every_steps
    self._at_end = config.eval.at_end
    self._num_steps = config.train.num_steps

  def due(self, step: int) -> bool:
    return bool((self._every and step % self._every == 0)
                or (step == self._num_steps and self._at_end))

  def __call__(self, state: train_state_lib.TrainState, step: int) -> dict[str, float]:
    with self._progress.timed('validation'):
      result = self._evaluator.run(nnx.merge(self._graphdef, state.ema_params), step=step,
                                   params='ema')
    scalars = result.scalars
    logging.info('Validation at step %d: %s', step,
                 ', '.join(f'{k}={v:.4g}' for k, v in sorted(scalars.items())))
    self._writer.write_scalars(step, scalars)
    if jax.process_index() == 0:
      self._writer.write_images(step, {'validation': report.picture(result)})
      report.write(result, self._workdir / 'validation' / f'step_{step:08d}', images=False)
      if step == self._num_steps:
        report.write(result, self._workdir / 'eval')
    return scalars


class _Pace:
  """Steps and images per second between two log lines."""

  def __init__(self, step: int, batch_size: int):
    self._time, self._step, self._batch_size = time.time(), step, batch_size

  def __call__(self, step: int) -> dict[str, float]:
    now = time.time()
    steps_per_sec = (step - self._step) / max(now - self._time, 1e-9)
    self._time, self._step = now, step
    return {'steps_per_sec': steps_per_sec, 'images_per_sec': steps_per_sec * self._batch_size}


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: paths.PathLike) -> train_state_lib.TrainState:
  """Trains (resuming from `workdir/checkpoints` if it holds a step); returns the final state.

  `workdir` is a local folder or a URI (gs://bucket/run): every file goes there.
  """
  # Workdir and summaries.
  config_lib.validate(config)
  workdir = paths.resolve(workdir)
  checkpoint_dir = paths.checkpoint_dir(workdir / 'checkpoints')  # Refused before any write.
  is_main = jax.process_index() == 0
  if is_main:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / 'config.json').write_text(config.to_json_best_effort(indent=2))
  writer = summaries.Writer(workdir, files=is_main)

  # Mesh and input pipeline: this process's rows of every global batch.
  mesh = _make_mesh(config)
  batch_sharding = mesh_lib.batch_sharding(mesh)
  data = pipeline.TrainPipeline(config.data, config.train.batch_size, config.seed,
                                mesh_lib.process_rows(batch_sharding, config.train.batch_size))
  logging.info('HR bucket sides %s: the train step compiles at most %d times.', data.hr_sizes,
               len(data.hr_sizes))

  # Model, optimizer and objective; the state restored onto this mesh, or created on it.
  tx, lr_schedule = optimizer_lib.make_optimizer(config.optim, config.train.num_steps)
  layout = train_state_lib.make_layout(config, mesh, tx)
  objective = _make_objective(config, layout)
  manager = store.make_manager(checkpoint_dir, keep=config.checkpoint.keep,
                               keep_best=config.checkpoint.keep_best,
                               async_save=config.checkpoint.async_save)
  state = _restore_or_create(config, layout, tx, manager, objective)
  start_step, num_steps = int(state.step), config.train.num_steps
  logging.info('Model: %d parameters; parameter sharding: %s.',
               sum(x.size for x in jax.tree.leaves(state.params)), config.mesh.param_sharding)
  if start_step == 0:
    writer.write_hparams(_hparams(config))
  if start_step >= num_steps:
    logging.info('Checkpoint step %d already reaches train.num_steps = %d.', start_step,
                 num_steps)

  # Update step, monitoring, validation.
  train_step = train_step_lib.TrainStep(layout, tx, lr_schedule, config.train, mesh, objective)
  progress = progress_lib.Progress(num_steps, writer, config.logging.progress_every_secs,
                                   start_step)
  monitor = _StepMonitor(config, checkpoint_dir, manager)
  validation = None
  if config.eval.every_steps or config.eval.at_end:
    validation = _Validation(config, mesh, layout.graphdef, workdir, writer, progress)
  profiler = None
  if config.logging.profile_steps and is_main:
    profiler = progress_lib.ProfileWindow(workdir, start_step + 10, config.logging.profile_steps)

  def save(state: train_state_lib.TrainState, step: int,
           metrics: dict[str, float] | None = None) -> int:
    monitor.check()  # Raises before a NaN state could be written.
    with progress.timed('checkpoint'):
      store.save(manager, step, params=state.params, ema_params=state.ema_params,
                 config=config, train_state=state.checkpoint_item(), metrics=metrics,
                 force=True)
    return step

  # Loop.
  compiled, pace = train_step.compile_count, _Pace(start_step, config.train.batch_size)
  done = saved = start_step
  stopping = False
  try:
    with (preemption.StopRequest(config.checkpoint.preemption_sync_steps) as stop,
          contextlib.closing(data.iterate(start_step)) as batches):
      batches = _until_failure_after_stop(batches, stop)
      while True:
        with progress.timed('data'):
          step, batch = next(batches, (None, None))
        if step is None or step >= num_steps:
          break
        with jax.profiler.StepTraceAnnotation('train', step_num=step):
          state, metrics = train_step(state, mesh_lib.global_batch(batch, batch_sharding))
        monitor.add(step, metrics)
        done = step + 1
        progress(done)
        if profiler is not None:
          profiler(done)
        if train_step.compile_count != compiled:
          compiled = train_step.compile_count
          logging.info('Compiled the train step for HR %s (%d compilation(s) so far).',
                       batch['hr'].shape[1:3], compiled)
        if done % config.logging.log_every_steps == 0 or done == num_steps:
          writer.write_scalars(done, {**monitor.summary(), **pace(done), 'compile_count': compiled,
                                      'skipped_steps': monitor.skipped})
        stopping = stop.should_stop(done, manager)
        scalars = None
        if validation is not None and validation.due(done):
          monitor.check()
          scalars = validation(state, done)
        if done % config.checkpoint.every_steps == 0 or done == num_steps or stopping:
          saved = save(state, done, scalars)
        if stopping:
          break
      if stopping or stop.requested:
        if saved != done:
          saved = save(state, done)
        logging.warning('Stopped by %s after step %d; checkpoint saved. Run the same command '
                        'to resume.', stop.signal_name or 'a preemption notice', done)
    monitor.check()
  finally:
    if profiler is not None:
      profiler.stop()
    manager.wait_until_finished()
    manager.close()
    writer.close()
  return state
