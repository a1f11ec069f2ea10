"""`idm-jax convert`: an official PyTorch checkpoint -> an Orbax checkpoint of this project."""
import argparse

from etils import epath
from flax import nnx

from idm_jax import paths
from idm_jax.checkpoints import official, store
from idm_jax.cli import evaluate as evaluate_cli
from idm_jax.config import loading
from idm_jax.models.idm import IDM


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument('--torch-checkpoint', required=True,
                      help='official *_gen.pth (needs torch) or an .npz of the same state dict')
  parser.add_argument('--config', required=True,
                      help='experiment config whose `model` matches the checkpoint; '
                      + evaluate_cli.CONFIG_HELP)
  parser.add_argument('--output', required=True, help='directory for the Orbax checkpoint')


def convert(torch_checkpoint: str, config_spec: str, output: str,
            overrides: tuple[str, ...] = ()) -> epath.Path:
  """Write step 0 with params == ema_params == the converted official weights."""
  config = loading.load(config_spec, overrides)
  out = paths.resolve(output)
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


def run(args: argparse.Namespace) -> int:
  out = convert(args.torch_checkpoint, args.config, args.output, args.config_overrides)
  print(f'wrote {out} (restore with --checkpoint {out})')
  return 0
