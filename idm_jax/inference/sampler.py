"""A network as a sampler: its weights, its config's sampler settings, and where it runs.

The evaluator, training's validation and the upscaler all sample through `Sampler`: requests
are batched by `batching.calls`, laid out over the mesh, and compiled once per call shape (on
every process of a multi-process job before the first call, see `mesh.compile_everywhere`).
A checkpoint becomes a sampler with `Sampler.from_checkpoint`, which restores the weights
without running the random initialiser.
"""
import os
from typing import Iterator, Sequence

import jax
import ml_collections
import numpy as np
from flax import nnx

from idm_jax import mesh as mesh_lib
from idm_jax.checkpoints import store
from idm_jax.config import diffusion as diffusion_config
from idm_jax.diffusion import sampling
from idm_jax.inference import batching
from idm_jax.models.idm import IDM


def load_model(model_config: ml_collections.ConfigDict, checkpoint_dir: str | os.PathLike, *,
               sharding: jax.sharding.Sharding, use_ema: bool = True,
               sampler_name: str | None = None) -> tuple[IDM, int]:
  """An `IDM` holding the checkpoint's (EMA) parameters, each laid out with `sharding`.

  No random initialisation runs (for the full network it takes minutes on a CPU): the model is
  built with `nnx.eval_shape` and every parameter comes from the checkpoint. Dropout is set to 0,
  which sampling never uses. Raises the errors of `store.restore_params` (missing directory,
  foreign checkpoint, model-config mismatch, and with `sampler_name` a sampler that would
  misread the network: 'distilled' for students only).

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


class Sampler:
  """`model` sampled as `config.sampler` says (its 'auto' consistency resolved), over `mesh`
  (None: this process's first device). `model` may be replaced by one of the same shapes
  (validation's next EMA weights): the compiled programs stay valid."""

  def __init__(self, model: nnx.Module, config: ml_collections.ConfigDict,
               mesh: jax.sharding.Mesh | None = None):
    self.model = model
    self.settings = diffusion_config.resolve_sampler(config)
    self.settings.trajectory_every = 0
    self.diffusion = config.diffusion
    self._mesh = mesh
    self._compiled = set()  # Call shapes compiled on every process (multi-process runs).

  @classmethod
  def from_checkpoint(cls, config: ml_collections.ConfigDict, checkpoint_dir: str | os.PathLike,
                      *, use_ema: bool = True) -> tuple['Sampler', int]:
    """(sampler, checkpoint step): the checkpoint's weights on this process's first device."""
    model, step = load_model(config.model, checkpoint_dir, use_ema=use_ema,
                             sharding=jax.sharding.SingleDeviceSharding(jax.local_devices()[0]),
                             sampler_name=config.sampler.name)
    return cls(model, config), step

  @property
  def devices(self) -> int:
    """How many devices one call's batch is split over."""
    return 1 if self._mesh is None else self._mesh.size

  @property
  def steps(self) -> int:
    """Network evaluations per sample (a distilled student's: `sampler.steps`)."""
    if self.settings.name == 'ddpm':
      return self.diffusion.num_timesteps
    return self.settings.steps

  def run(self, requests: Sequence[batching.Request],
          per_device_batch: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yields (request index, image (H, W, 3) float32) for every request, call by call; a call
    holds at most `per_device_batch` images per device."""
    for call in batching.calls(requests, per_device_batch * self.devices, self.devices):
      lr, p, keys = call.lr, call.p, call.keys
      if self._mesh is not None:
        lr, p, keys = mesh_lib.put((lr, p, keys), (mesh_lib.batch_sharding(self._mesh),) * 3)
      args = (self.model, lr, call.out_hw, p, keys, self.settings, self.diffusion)
      name = f'sample_{lr.shape}_{call.out_hw}'
      if jax.process_count() > 1 and name not in self._compiled:
        mesh_lib.compile_everywhere(sampling.lower(*args), name)
        self._compiled.add(name)
      images = np.asarray(mesh_lib.to_local_device(sampling.sample(*args)), np.float32)
      yield from zip(call.members, images)
