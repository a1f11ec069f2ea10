"""A tiny network's config file and a random checkpoint of it, for the evaluate/upscale tests."""
import pathlib
import textwrap

import jax
import numpy as np
from flax import nnx

from idm_jax.checkpoints import store
from idm_jax.config import loading
from idm_jax.models.idm import IDM

CONFIG_SOURCE = textwrap.dedent('''
    from idm_jax.config import experiment as training_config
    from tests.tiny_model import tiny_model_config

    def get_config(variant=''):
      c = training_config.default_config()
      c.model = tiny_model_config()
      c.sampler.name, c.sampler.steps = 'ddim', 2
      c.sampler.tile_size, c.sampler.tile_overlap = 32, 4
      c.data.lr_size, c.data.min_hr_size, c.data.max_hr_size = 8, 8, 32  # x1 .. x4.
      c.data.eval.crop_size = 24  # The embedded validation photos, center 24x24.
      c.eval.scales = (2.0, 6.0)  # In and beyond the training range (model.max_scale = 4).
      if variant == 'wider':
        c.model.encoder_features = 16
      return c
''')


def write_config(directory: pathlib.Path) -> pathlib.Path:
  path = directory / 'tiny_config.py'
  path.write_text(CONFIG_SOURCE)
  return path


def write_checkpoint(directory: pathlib.Path, config_path: pathlib.Path) -> pathlib.Path:
  """Step 7 with random params, and EMA params = params / 2 (so the two differ).

  Filled from NumPy: random initialisation of the network takes a minute on two CPU cores.
  """
  config = loading.load(str(config_path))
  params = nnx.state(nnx.eval_shape(lambda: IDM(config.model, rngs=nnx.Rngs(0))), nnx.Param)
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda x: 0.1 * rng.standard_normal(x.shape, np.float32), params)
  ema = jax.tree.map(lambda x: x / 2, params)
  out = directory / 'checkpoints'
  manager = store.make_manager(out, async_save=False, keep_best=0)
  store.save(manager, 7, params=params, ema_params=ema, config=config, force=True)
  manager.close()
  return out
