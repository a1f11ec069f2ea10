"""The training state and its layout on the mesh.

The model is kept functionally: a static `graphdef` and its parameters as a pure dict (what Orbax
stores and optax updates). The network holds nothing else: dropout draws from the key that each
call passes.
"""
import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx
from jax.sharding import Mesh

from idm_jax import mesh as mesh_lib
from idm_jax.models import idm


@flax.struct.dataclass
class TrainState:
  """Everything an update reads and writes."""
  step: jax.Array  # () int32: updates applied so far, so also the index of the next batch.
  params: dict[str, Any]  # Pure dict of the model's nnx.Param arrays.
  ema_params: dict[str, Any]
  opt_state: optax.OptState
  rng: jax.Array  # (2,) uint32; step k draws from fold_in(rng, k), so resuming needs no more.

  def checkpoint_item(self) -> dict[str, Any]:
    """The `train_state` checkpoint item (parameters and EMA are items of their own)."""
    return {'opt_state': self.opt_state, 'step': self.step, 'rng': self.rng}


@dataclasses.dataclass(frozen=True)
class Layout:
  """The static half of training: model structure, shapes and shardings."""
  graphdef: nnx.GraphDef
  abstract_state: TrainState  # jax.ShapeDtypeStruct leaves, each with its sharding.
  state_shardings: TrainState


def _model(model_config: ml_collections.ConfigDict, seed: int) -> idm.IDM:
  """The network in training mode, initialised from `seed`."""
  # The counter-based 'rbg' generator compiles the initialiser several times faster than
  # threefry on CPU; the values are computed on one device, so they do not depend on the mesh.
  key = jax.random.key(seed, impl='rbg')
  model = idm.IDM(model_config, rngs=nnx.Rngs(params=key))
  model.train()
  return model


def _split(model: idm.IDM) -> tuple[nnx.GraphDef, dict[str, Any]]:
  """(graphdef, parameters as a pure dict); the filter fails if the model held other state."""
  graphdef, params = nnx.split(model, nnx.Param)
  return graphdef, nnx.to_pure_dict(params)


def _init(model_config: ml_collections.ConfigDict, tx: optax.GradientTransformation,
          seed: int, params: dict[str, Any] | None = None) -> TrainState:
  if params is None:
    params = _split(_model(model_config, seed))[1]
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    ema_params=jax.tree.map(jnp.copy, params), opt_state=tx.init(params),
                    rng=jax.random.fold_in(jax.random.PRNGKey(seed), 1))


def make_layout(config: ml_collections.ConfigDict, mesh: Mesh,
                tx: optax.GradientTransformation) -> Layout:
  """Shapes from `jax.eval_shape`, shardings from the `mesh` config section."""
  graphdef, _ = _split(nnx.eval_shape(lambda: _model(config.model, config.seed)))
  abstract_state = jax.eval_shape(lambda: _init(config.model, tx, config.seed))
  repl = mesh_lib.replicated(mesh)
  shardings = TrainState(
      step=repl, params=mesh_lib.param_shardings(abstract_state.params, mesh, config.mesh),
      ema_params=mesh_lib.param_shardings(abstract_state.ema_params, mesh, config.mesh),
      opt_state=mesh_lib.param_shardings(abstract_state.opt_state, mesh, config.mesh), rng=repl)
  abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                          abstract_state, shardings)
  return Layout(graphdef=graphdef, abstract_state=abstract, state_shardings=shardings)


def create(config: ml_collections.ConfigDict, layout: Layout, tx: optax.GradientTransformation,
           params: dict[str, Any] | None = None) -> TrainState:
  """A fresh state from `config.seed`, laid out with the layout's shardings; with `params`
  (laid out as the state's), the network starts from those (a distillation's teacher)."""
  if params is not None:
    # Copied: the train step donates its state, and `params` stays in use (the teacher).
    return jax.jit(lambda p: _init(config.model, tx, config.seed, jax.tree.map(jnp.copy, p)),
                   out_shardings=layout.state_shardings)(params)
  state = jax.jit(lambda: _init(config.model, tx, config.seed))()
  return mesh_lib.put(state, layout.state_shardings)

