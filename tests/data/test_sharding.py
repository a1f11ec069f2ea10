"""Host batches become global arrays sharded along the batch axis (8 simulated CPU devices)."""
import jax
import numpy as np

from idm_jax import mesh as mesh_lib
from idm_jax.config import data as config_lib
from idm_jax.data import pipeline


def test_global_batch_shards_the_batch_axis():
  assert jax.device_count() == 8
  mesh = jax.make_mesh((8,), (mesh_lib.DATA,))
  cfg = config_lib.default_data_config()
  cfg.update(num_workers=0, num_threads=0)
  batch = pipeline.TrainPipeline(cfg, 8, seed=0).batch(0)
  out = mesh_lib.global_batch(batch, mesh_lib.batch_sharding(mesh))
  for k, v in out.items():
    assert v.shape == batch[k].shape
    np.testing.assert_array_equal(np.asarray(v), batch[k])
    shards = v.addressable_shards
    assert len(shards) == 8
    assert {s.data.shape[0] for s in shards} == {1}  # 8 rows over 8 devices.
    for s in shards:
      np.testing.assert_array_equal(np.asarray(s.data), batch[k][s.index])
