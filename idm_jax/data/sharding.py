"""Global batches from per-host batches, sharded along the batch axis of the training mesh."""
import jax
import numpy as np


def batch_sharding(mesh: jax.sharding.Mesh) -> jax.sharding.NamedSharding:
  """Leading (batch) axis split over every axis of `mesh`; the other axes replicated."""
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(mesh.axis_names))


def to_global(batch: dict[str, np.ndarray],
              sharding: jax.sharding.Sharding) -> dict[str, jax.Array]:
  """Assembles each host's local arrays (b, ...) into global arrays (b * process_count, ...).

  Every host calls this with its own batch of the same step (same shapes on all hosts).
  """
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in batch.items()}
