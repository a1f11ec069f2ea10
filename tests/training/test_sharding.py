"""The sharded step equals the single-device step; checkpoints move between meshes."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from idm_jax import mesh as mesh_lib
from idm_jax.checkpoints import store
from idm_jax.data import pipeline
from idm_jax.training import objectives
from idm_jax.training import optimizer
from idm_jax.training import train_state as train_state_lib
from idm_jax.training import train_step as train_step_lib
from tests.training import common

MESHES = {'one_device': (1, 'replicated'), 'data_parallel': (8, 'replicated'),
          'fsdp': (8, 'fsdp')}
STEPS = 2


def _setup(devices: int, param_sharding: str):
  config = common.micro_config()
  config.mesh.data, config.mesh.param_sharding = devices, param_sharding
  mesh = mesh_lib.make_mesh(config.mesh)
  tx, schedule = optimizer.make_optimizer(config.optim, config.train.num_steps)
  layout = train_state_lib.make_layout(config, mesh, tx)
  return config, mesh, tx, schedule, layout


@pytest.fixture(scope='module')
def runs():
  """STEPS updates of the same global batches on each mesh: {name: (state, losses, layout)}."""
  data = pipeline.TrainPipeline(common.micro_config().data, 8, seed=0)
  batches = [data.batch(step) for step in range(STEPS)]
  out = {}
  for name, (devices, param_sharding) in MESHES.items():
    config, mesh, tx, schedule, layout = _setup(devices, param_sharding)
    state = train_state_lib.create(config, layout, tx)
    step = train_step_lib.TrainStep(layout, tx, schedule, config.train, mesh,
                                    objectives.make_objective(config, layout.graphdef))
    losses = []
    for batch in batches:
      state, metrics = step(state, mesh_lib.global_batch(batch, mesh_lib.batch_sharding(mesh)))
      losses.append(float(metrics['loss']))
    assert step.compile_count == 1
    out[name] = (state, losses, layout)
  return out


@pytest.mark.parametrize('name', ['data_parallel', 'fsdp'])
def test_sharded_step_matches_one_device(runs, name):
  reference, ref_losses, _ = runs['one_device']
  state, losses, _ = runs[name]
  np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
  for tree in ('params', 'ema_params', 'opt_state'):
    for x, y in zip(jax.tree.leaves(getattr(state, tree)), jax.tree.leaves(getattr(reference,
                                                                                  tree))):
      np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-6)


def test_fsdp_splits_parameters_and_optimizer_state(runs):
  state, _, _ = runs['fsdp']
  split = 0
  for x in jax.tree.leaves(state.params):
    spec = mesh_lib.fsdp_spec(x.shape, 8, 0)
    assert x.sharding.spec == spec
    if spec != P():
      axis = len(spec) - 1
      assert x.addressable_shards[0].data.shape[axis] == x.shape[axis] // 8
      split += 1
  assert split > len(jax.tree.leaves(state.params)) // 2
  mu = jax.tree.leaves(state.opt_state)[1:]
  assert any(mesh_lib.DATA in tuple(x.sharding.spec) for x in mu)


def test_fsdp_spec():
  assert mesh_lib.fsdp_spec((3, 3, 16, 64), 8, 0) == P(None, None, None, mesh_lib.DATA)
  assert mesh_lib.fsdp_spec((64, 16), 8, 0) == P(mesh_lib.DATA)
  assert mesh_lib.fsdp_spec((3, 5), 8, 0) == P()  # Nothing divisible.
  assert mesh_lib.fsdp_spec((64, 64), 8, 2**16) == P()  # Too small to split.
  assert mesh_lib.fsdp_spec((64, 64), 1, 0) == P()


def test_checkpoint_from_eight_devices_restores_on_one(runs, tmp_path):
  state, _, _ = runs['fsdp']
  config = common.micro_config()
  manager = store.make_manager(tmp_path, async_save=False)
  store.save(manager, STEPS, params=state.params, ema_params=state.ema_params, config=config,
             train_state=state.checkpoint_item())
  manager.wait_until_finished()

  # Full resume onto a one-device mesh.
  one = _setup(1, 'replicated')[4]
  restored = store.restore_training(
      manager, STEPS, params=one.abstract_state.params, ema_params=one.abstract_state.ema_params,
      train_state=one.abstract_state.checkpoint_item(), model_config=config.model)
  manager.close()
  for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(
      {'params': state.params, 'ema_params': state.ema_params,
       'train_state': state.checkpoint_item()})):
    assert len(a.sharding.device_set) == 1
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

  # The evaluation path: EMA weights into a model living on one device.
  reference, _, layout = runs['one_device']
  model = nnx.merge(layout.graphdef, reference.params)
  assert store.restore_params(tmp_path, model) == STEPS
  for a, b in zip(jax.tree.leaves(nnx.to_pure_dict(nnx.state(model, nnx.Param))),
                  jax.tree.leaves(state.ema_params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_export_without_optimizer_state_cannot_resume(tmp_path):
  config = common.micro_config()
  params = {'w': jnp.ones(3)}
  manager = store.make_manager(tmp_path, async_save=False)
  store.save(manager, 1, params=params, ema_params=params, config=config)
  with pytest.raises(ValueError, match='no optimizer state'):
    store.restore_training(manager, 1, params=params, ema_params=params,
                           train_state={'step': jnp.zeros((), jnp.int32)},
                           model_config=config.model)
  manager.close()
