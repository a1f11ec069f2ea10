"""A distillation run through `train_and_evaluate`: it starts from the teacher, validates the
student's sampler, and a resumed run equals the uninterrupted one."""
import json
import shutil

import jax
import numpy as np
import pytest

from idm_jax import mesh as mesh_lib
from idm_jax.inference import sampler as inference_sampler
from idm_jax.checkpoints import store
from idm_jax.training import optimizer
from idm_jax.training import train
from idm_jax.training import train_state
from tests.training import common


def _distill_config(teacher_dir):
  c = common.micro_config()
  c.distill.teacher = str(teacher_dir)
  c.distill.teacher_steps = 4  # The fewest that step at t = T / 4 - 1: a short compile.
  c.sampler.name, c.sampler.steps = 'distilled', 2
  c.train.num_steps, c.checkpoint.every_steps = 4, 2
  return c


def _params(checkpoints, step, use_ema):
  manager = store.make_manager(checkpoints, read_only=True, async_save=False)
  restored = manager.restore(step)
  manager.close()
  return restored['ema_params' if use_ema else 'params']


def _seed0_init(config):
  """The parameters a run of `config` (seed 0) would start from without a teacher."""
  mesh = mesh_lib.make_mesh(config.mesh)
  tx, _ = optimizer.make_optimizer(config.optim, config.train.num_steps)
  return train_state.create(config, train_state.make_layout(config, mesh, tx), tx).params


def _assert_trees_close(a, b, **tol):
  flat_a, flat_b = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(flat_a) == len(flat_b) > 0
  for x, y in zip(flat_a, flat_b):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), **tol)


def test_distillation_starts_from_the_teacher_and_resumes_exactly(tmp_path):
  teacher = common.micro_config()  # The training tests' program: served by the compile cache.
  teacher.train.num_steps = 2
  teacher.seed = 1  # Another initialisation than the student's seed 0 would give.
  train.train_and_evaluate(teacher, tmp_path / 'teacher')
  teacher_ema = _params(tmp_path / 'teacher' / 'checkpoints', 2, use_ema=True)

  config = _distill_config(tmp_path / 'teacher' / 'checkpoints')
  config.eval.at_end = True
  full = tmp_path / 'full'
  train.train_and_evaluate(config, full)
  report = json.loads((full / 'eval' / 'metrics.json').read_text())
  assert report['sampler']['name'] == 'distilled' and report['sampler']['steps'] == 2
  assert np.isfinite(report['scales'][0]['mean']['psnr_mean'])

  # Two small steps from the teacher's weights, far from those a fresh start would have.
  student = _params(full / 'checkpoints', 2, use_ema=False)
  gap = lambda a, b: max(float(np.abs(np.asarray(x) - np.asarray(y)).max())
                         for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  to_teacher, to_fresh = gap(student, teacher_ema), gap(student, _seed0_init(config))
  assert 0 < to_teacher < 0.01 < to_fresh, (to_teacher, to_fresh)

  # A student is sampled by the 'distilled' sampler alone, and a teacher never by it.
  load = lambda directory, name: inference_sampler.load_model(
      config.model, directory, sharding=jax.sharding.SingleDeviceSharding(jax.devices()[0]),
      sampler_name=name)
  assert load(full / 'checkpoints', 'distilled')[1] == 4
  with pytest.raises(ValueError, match='is a distilled student.*pass --sampler distilled'):
    load(full / 'checkpoints', 'ddim')
  with pytest.raises(ValueError, match="is not a distilled student.*pass --sampler dpm_solver"):
    load(tmp_path / 'teacher' / 'checkpoints', 'distilled')
  with pytest.raises(ValueError, match='a distilled student.*cannot teach: distil from a noise'):
    train.train_and_evaluate(_distill_config(full / 'checkpoints'), tmp_path / 'second')
  assert not (tmp_path / 'second' / 'checkpoints').exists()

  # Resume from step 2 of a copy: the same step 4 as the uninterrupted run.
  resumed = tmp_path / 'resumed'
  shutil.copytree(full, resumed)
  shutil.rmtree(resumed / 'checkpoints' / '4')
  shutil.rmtree(resumed / 'eval')
  config.eval.at_end = False
  train.train_and_evaluate(config, resumed)
  for use_ema in (False, True):
    _assert_trees_close(_params(resumed / 'checkpoints', 4, use_ema),
                        _params(full / 'checkpoints', 4, use_ema), rtol=1e-6, atol=1e-7)


def test_missing_teacher_is_named(tmp_path):
  with pytest.raises(FileNotFoundError, match='no_such_run'):
    train.train_and_evaluate(_distill_config(tmp_path / 'no_such_run'), tmp_path / 'run')
