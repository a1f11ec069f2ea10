"""The device mesh and how arrays are laid out on it: batch split over 'data', parameters
replicated or split FSDP-style over the same axis."""
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA = 'data'
# Seconds a process waits at a barrier for the others to finish compiling.
COMPILE_BARRIER_TIMEOUT = 3600


def make_mesh(config: ml_collections.ConfigDict, devices: list[Any] | None = None) -> Mesh:
  """A 1-D mesh of `config.data` devices (-1: all) with axis 'data'."""
  devices = jax.devices() if devices is None else devices
  n = len(devices) if config.data == -1 else config.data
  if n > len(devices):
    raise ValueError(f'mesh.data = {n} but only {len(devices)} devices are visible.')
  # Auto axes: shardings come from jit's in/out_shardings and XLA propagates the rest.
  return jax.make_mesh((n,), (DATA,), axis_types=(AxisType.Auto,), devices=devices[:n])


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over 'data'."""
  return NamedSharding(mesh, P(DATA))


def fsdp_spec(shape: tuple[int, ...], n: int, min_size: int) -> P:
  """Split the largest axis divisible by `n`; small or indivisible arrays stay replicated."""
  if n == 1 or int(np.prod(shape, dtype=np.int64)) < min_size:
    return P()
  axes = [i for i, d in enumerate(shape) if d % n == 0]
  if not axes:
    return P()
  axis = max(axes, key=lambda i: (shape[i], i))
  return P(*([None] * axis + [DATA]))


def param_shardings(tree: Any, mesh: Mesh, config: ml_collections.ConfigDict) -> Any:
  """NamedShardings for a tree of (abstract) arrays under `config.param_sharding`."""
  n = mesh.shape[DATA]

  def one(x):
    if config.param_sharding == 'fsdp':
      return NamedSharding(mesh, fsdp_spec(tuple(x.shape), n, config.fsdp_min_size))
    return replicated(mesh)

  return jax.tree.map(one, tree)


def put(tree: Any, shardings: Any) -> Any:
  """Values that every process holds alike -> global arrays laid out with `shardings`.

  `jax.device_put` only reaches this process's devices; on several processes each one fills
  its own shards from its copy.
  """
  if all(s.is_fully_addressable for s in jax.tree.leaves(shardings)):
    return jax.device_put(tree, shardings)
  return jax.tree.map(lambda x, s: jax.make_array_from_callback(x.shape, s, lambda i: x[i]),
                      tree, shardings)


def process_rows(sharding: NamedSharding, global_batch_size: int) -> range:
  """The rows of a global batch that this process's devices hold under `sharding`.

  `make_array_from_process_local_data` takes them as one contiguous block, which is what a mesh
  whose devices are grouped by process gives.
  """
  index_map = sharding.addressable_devices_indices_map((global_batch_size,))
  rows = sorted({r for index in index_map.values()
                 for r in range(global_batch_size)[index[0] if index else slice(None)]})
  if not rows:
    raise ValueError(f'Process {jax.process_index()} has no device in the mesh: set mesh.data to '
                     'all devices (-1).')
  if rows != list(range(rows[0], rows[-1] + 1)):
    raise ValueError(f'Process {jax.process_index()} holds rows {rows} of the batch, not one '
                     'block: order the mesh devices by process (jax.make_mesh does).')
  return range(rows[0], rows[-1] + 1)


def global_batch(local: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
  """This process's rows of the batch -> global arrays split over the mesh."""
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local.items()}


def to_local_device(tree: Any) -> Any:
  """A copy of `tree` whole on this process's first device (gathers across hosts if needed)."""
  device = jax.local_devices()[0]
  if all(getattr(x, 'is_fully_addressable', True) for x in jax.tree.leaves(tree)):
    return jax.device_put(tree, device)
  return jax.device_put(multihost_utils.process_allgather(tree, tiled=True), device)


def compile_everywhere(lowered: jax.stages.Lowered, name: str) -> None:
  """Compiles `lowered`, then waits until every process has compiled it too.

  On CPU hosts the gloo collectives give a process 30 s to join the first collective of a
  program, less than a compile can take on a busy host: the barrier (the coordination service's,
  not a collective) lines the processes up first. The later `jax.jit` call reuses the
  compilation. `name` must be new for each program.
  """
  lowered.compile()
  if jax.process_count() > 1:
    ocp.multihost.sync_global_processes(f'idm_jax_compiled_{name}',
                                        timeout=COMPILE_BARRIER_TIMEOUT)
