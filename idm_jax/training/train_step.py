"""One optimisation step of an objective (`objectives.py`), jitted over the mesh with donated
state: `step(state, batch) -> (state, metrics)`."""
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

from idm_jax import mesh as mesh_lib
from idm_jax.training import ema as ema_lib
from idm_jax.training import objectives
from idm_jax.training import train_state as train_state_lib

Metrics = dict[str, jax.Array]
Update = Callable[[train_state_lib.TrainState, objectives.Batch, Any],
                  tuple[train_state_lib.TrainState, Metrics]]


def make_update(graphdef: nnx.GraphDef, tx: optax.GradientTransformation,
                lr_schedule: optax.Schedule, objective: objectives.Objective,
                train: ml_collections.ConfigDict) -> Update:
  """The pure update (state, batch, objective arrays) -> (state, metrics).

  Step k draws its loss noise and its dropout masks from fold_in(state.rng, k): the dropout key
  goes to the network with each call, so the model holds parameters only. A step whose loss or
  gradient is not finite changes nothing but the step counter and reports `finite` = False; the
  loop then stops or goes on as `train.nonfinite` says.
  """

  def update(state: train_state_lib.TrainState, batch: objectives.Batch, arrays: Any):
    key_loss, key_dropout = jax.random.split(jax.random.fold_in(state.rng, state.step))

    def loss_fn(params):
      model = nnx.merge(graphdef, params)
      rngs = nnx.Rngs(dropout=key_dropout)
      net = lambda lr, y_t, gamma, p: model(lr, y_t, gamma, p, rngs=rngs)
      return objective(net, arrays, batch, key_loss)

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    grad_norm = optax.tree.norm(grads)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema = ema_lib.update(state.ema_params, params, state.step, train.ema_decay,
                         train.ema_start_step)
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
  """The jitted update of `objective` on a mesh; counts its compilations (one per HR bucket
  size)."""

  def __init__(self, layout: train_state_lib.Layout, tx: optax.GradientTransformation,
               lr_schedule: optax.Schedule, train: ml_collections.ConfigDict,
               mesh: jax.sharding.Mesh, objective: objectives.Objective):
    self.compile_count = 0
    self._compiled = set()  # Batch shapes compiled on every process (multi-process runs).
    self._arrays = objective.arrays
    update = make_update(layout.graphdef, tx, lr_schedule, objective, train)

    def counted(state, batch, arrays):
      self.compile_count += 1  # Runs only while tracing, i.e. once per new batch shape.
      return update(state, batch, arrays)

    self.jitted = jax.jit(
        counted,
        in_shardings=(layout.state_shardings, mesh_lib.batch_sharding(mesh), objective.shardings),
        out_shardings=(layout.state_shardings, mesh_lib.replicated(mesh)),
        donate_argnums=0)

  def trace(self, state: train_state_lib.TrainState,
            batch: objectives.Batch) -> jax.stages.Traced:
    """The step traced for these arguments' shapes: `.lower().compile()` it (the next call of
    the step reuses that compilation), read its text or cost."""
    return self.jitted.trace(state, batch, self._arrays)

  def lower(self, state: train_state_lib.TrainState,
            batch: objectives.Batch) -> jax.stages.Lowered:
    """`trace(...).lower()`."""
    return self.trace(state, batch).lower()

  def __call__(self, state: train_state_lib.TrainState,
               batch: objectives.Batch) -> tuple[train_state_lib.TrainState, Metrics]:
    shape = tuple(batch['hr'].shape)
    if jax.process_count() > 1 and shape not in self._compiled:
      mesh_lib.compile_everywhere(self.lower(state, batch), f'train_step_{shape}')
      self._compiled.add(shape)
    return self.jitted(state, batch, self._arrays)
