"""`idm-jax convert`: an official PyTorch checkpoint -> an Orbax checkpoint of this project."""
from collections.abc import Sequence

import ml_collections
from absl import flags
from etils import epath
from flax import nnx

from idm_jax import paths
from idm_jax.checkpoints import official, store
from idm_jax.cli import flag_groups
from idm_jax.models.idm import IDM


INPUT_ERRORS = flag_groups.INPUT_ERRORS
LOGS_PROGRESS = False  # It prints its result; absl's INFO lines stay off.


def define_flags(fv: flags.FlagValues, argv: Sequence[str]) -> None:
  flags.DEFINE_string('torch_checkpoint', None, 'Official *_gen.pth (needs torch) or an .npz of '
                      'the same state dict.', flag_values=fv, required=True)
  flag_groups.define_config(fv, argv, 'Its `model` section must match the checkpoint.')
  flags.DEFINE_string('output', None, 'Directory for the Orbax checkpoint.', flag_values=fv,
                      required=True)


def convert(torch_checkpoint: paths.PathLike, config: ml_collections.ConfigDict,
            output: paths.PathLike) -> epath.Path:
  """Write step 0 with params == ema_params == the converted official weights."""
  out = paths.checkpoint_dir(output)
  if out.exists() and any(out.iterdir()):
    raise FileExistsError(f'{out} is not empty; choose a new --output directory.')
  state_dict = official.load_state_dict(torch_checkpoint)
  model = nnx.eval_shape(lambda: IDM(config.model, rngs=nnx.Rngs(0)))
  params = official.convert_state_dict(state_dict, model, config.model)
  manager = store.make_manager(out, keep=1, keep_best=0, async_save=False)
  store.save(manager, 0, params=params, ema_params=params, config=config, force=True)
  manager.wait_until_finished()
  manager.close()
  return out


def run(fv: flags.FlagValues, args: Sequence[str]) -> int:
  if args:
    raise flag_groups.UsageError(f'unexpected arguments {list(args)}; pass '
                                 '--torch_checkpoint=FILE.')
  out = convert(fv.torch_checkpoint, flag_groups.config(fv), fv.output)
  print(f'wrote {out} (restore with --checkpoint={out})')
  return 0
