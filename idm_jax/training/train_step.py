"""One optimisation step, jitted over the mesh with donated state: the official objective, or
with `distill.teacher` set, the distillation loss against the frozen teacher's parameters."""
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

from idm_jax import mesh as mesh_lib
from idm_jax.diffusion import distillation
from idm_jax.diffusion import objective
from idm_jax.diffusion import schedules
from idm_jax.training import ema as ema_lib
from idm_jax.training import train_state as train_state_lib

Batch = dict[str, jax.Array]  # lr (B, h, w, 3), hr (B, H, W, 3) in [-1, 1]; p (B,).
Metrics = dict[str, jax.Array]


def make_update(graphdef: nnx.GraphDef, tx: optax.GradientTransformation,
                lr_schedule: optax.Schedule, config: ml_collections.ConfigDict
                ) -> Callable[[train_state_lib.TrainState, Any, Batch, Any],
                              tuple[train_state_lib.TrainState, Metrics]]:
  """The pure update (state, rest, batch, teacher) -> (state, metrics); `teacher` holds the
  teacher's parameters when distilling, else None.

  A step whose loss or gradient is not finite changes nothing but the step counter and reports
  `finite` = False; the loop then stops or goes on as `train.nonfinite` says.
  """
  noise_schedule = schedules.make_schedule(config.diffusion)
  loss_type = config.diffusion.loss
  decay, start = config.train.ema_decay, config.train.ema_start_step

  def update(state: train_state_lib.TrainState, rest: Any, batch: Batch, teacher: Any):
    key_loss, key_dropout = jax.random.split(jax.random.fold_in(state.rng, state.step))

    def loss_fn(params):
      model = nnx.merge(graphdef, params, rest)
      nnx.reseed(model, dropout=key_dropout)
      if teacher is None:
        return objective.training_loss(model, batch['lr'], batch['hr'], batch['p'], key_loss,
                                       noise_schedule, loss_type)
      frozen = nnx.merge(graphdef, teacher, rest)
      frozen.eval()
      return distillation.distill_loss(model, frozen, batch['lr'], batch['hr'].shape[1:3],
                                       batch['p'], key_loss, config)

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    grad_norm = optax.tree.norm(grads)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema = ema_lib.update(state.ema_params, params, state.step, decay, start)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
    new_state = train_state_lib.TrainState(
        step=state.step + 1, params=keep(params, state.params),
        ema_params=keep(ema, state.ema_params), opt_state=keep(opt_state, state.opt_state),
        rng=state.rng)
    metrics = {'loss': loss, 'grad_norm': grad_norm, 'learning_rate': lr_schedule(state.step),
               'finite': finite}
    return new_state, metrics

  return update


class TrainStep:
  """The jitted update on a mesh; counts its compilations (one per HR bucket size).

  `teacher`: the teacher's parameters, laid out like the student's, when distilling.
  """

  def __init__(self, layout: train_state_lib.Layout, tx: optax.GradientTransformation,
               lr_schedule: optax.Schedule, config: ml_collections.ConfigDict,
               mesh: jax.sharding.Mesh, teacher: Any = None):
    self.compile_count = 0
    self._compiled = set()  # Batch shapes compiled on every process (multi-process runs).
    self._teacher = teacher
    update = make_update(layout.graphdef, tx, lr_schedule, config)

    def counted(state, rest, batch, teacher):
      self.compile_count += 1  # Runs only while tracing, i.e. once per new batch shape.
      return update(state, rest, batch, teacher)

    self.jitted = jax.jit(
        counted,
        in_shardings=(layout.state_shardings, layout.rest_shardings,
                      mesh_lib.batch_sharding(mesh),
                      None if teacher is None else layout.state_shardings.params),
        out_shardings=(layout.state_shardings, mesh_lib.replicated(mesh)),
        donate_argnums=0)

  def trace(self, state: train_state_lib.TrainState, rest: Any,
            batch: Batch) -> jax.stages.Traced:
    """The step traced for these arguments' shapes: `.lower().compile()` it (the next call of
    the step reuses that compilation), read its text or cost. Takes what `__call__` takes."""
    return self.jitted.trace(state, rest, batch, self._teacher)

  def lower(self, state: train_state_lib.TrainState, rest: Any,
            batch: Batch) -> jax.stages.Lowered:
    """`trace(...).lower()`."""
    return self.trace(state, rest, batch).lower()

  def __call__(self, state: train_state_lib.TrainState, rest: Any,
               batch: Batch) -> tuple[train_state_lib.TrainState, Metrics]:
    shape = tuple(batch['hr'].shape)
    if jax.process_count() > 1 and shape not in self._compiled:
      mesh_lib.compile_everywhere(self.lower(state, rest, batch), f'train_step_{shape}')
      self._compiled.add(shape)
    return self.jitted(state, rest, batch, self._teacher)
