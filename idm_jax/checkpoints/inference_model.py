"""The network for sampling: built abstractly and filled straight from a checkpoint."""
import os

import jax
import ml_collections
from flax import nnx

from idm_jax.checkpoints import store
from idm_jax.models.idm import IDM


def load_model(model_config: ml_collections.ConfigDict, checkpoint_dir: str | os.PathLike, *,
               sharding: jax.sharding.Sharding, use_ema: bool = True,
               sampler_name: str | None = None) -> tuple[IDM, int]:
  """An `IDM` holding the checkpoint's (EMA) parameters, each laid out with `sharding`.

  No random initialisation runs (for the full network it takes minutes on a CPU): the model is
  built with `nnx.eval_shape` and every parameter comes from the checkpoint. Dropout is set to 0,
  which sampling never uses; the network then holds parameters only. Raises the errors of
  `store.restore_params` (missing directory, foreign checkpoint, model-config mismatch, and with
  `sampler_name` a sampler that would misread the network: 'distilled' for students only).

  Returns:
    (model, checkpoint step).
  """
  cfg = model_config.copy_and_resolve_references()
  cfg.dropout = 0.0
  model = nnx.eval_shape(lambda: IDM(cfg, rngs=nnx.Rngs(0)))
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                          nnx.state(model))
  nnx.update(model, abstract)
  step = store.restore_params(checkpoint_dir, model, use_ema=use_ema, sampler_name=sampler_name)
  return model, step
