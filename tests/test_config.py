"""Configs: every file in configs/ is valid; a wrong field or type fails early, naming it; the
one loader applies overrides and validates."""
import importlib.util
import pathlib

import ml_collections
import pytest
from absl import flags

from idm_jax import main as train_main
from idm_jax.cli import flag_groups
from idm_jax.cli import main as cli
from idm_jax.cli import upscale
from idm_jax.config import experiment as config_lib
from idm_jax.config import loading

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / 'configs').glob('*.py'))


def _load(path: pathlib.Path) -> ml_collections.ConfigDict:
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


@pytest.mark.parametrize('path', CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_files_are_valid(path):
  config_lib.validate(_load(path))


def test_official_settings():
  ffhq = _load(REPO / 'configs' / 'ffhq_16_128.py')
  assert (ffhq.train.batch_size, ffhq.optim.learning_rate, ffhq.train.num_steps) == (
      32, 1e-4, 1_000_000)
  assert (ffhq.data.lr_size, ffhq.data.max_hr_size, ffhq.model.max_scale) == (16, 128, 8.0)
  cat = _load(REPO / 'configs' / 'cat_x16.py')
  assert (cat.optim.learning_rate, cat.data.lr_size, cat.data.max_hr_size) == (2e-5, 16, 256)
  df2k = _load(REPO / 'configs' / 'df2k_x4.py')
  assert (df2k.data.lr_size, df2k.data.max_hr_size, df2k.model.max_scale) == (40, 160, 4.0)


def test_unknown_field_is_named():
  config = config_lib.default_config()
  config.train.bacth_size = 8
  with pytest.raises(ValueError, match=r"unknown config field 'train\.bacth_size'"):
    config_lib.validate(config)


def test_wrong_element_type_is_named():
  config = config_lib.default_config()
  config.eval.scales = (2.0, 'x3')
  with pytest.raises(TypeError, match=r'eval\.scales\[1\] .* is a str'):
    config_lib.validate(config)


def test_int_for_bool_is_named():
  config = config_lib.default_config()
  with config.checkpoint.ignore_type():
    config.checkpoint.async_save = 1
  with pytest.raises(TypeError, match=r'checkpoint\.async_save = 1 is a int'):
    config_lib.validate(config)


def test_missing_fields_are_named():
  config = config_lib.default_config()
  config.model = ml_collections.ConfigDict({'inner_channel': 8})
  with pytest.raises(ValueError, match=r'lacks field\(s\) model\.attn_res'):
    config_lib.validate(config)


def test_inconsistent_scale_range_is_named():
  config = config_lib.default_config()
  config.model.max_scale = 4.0  # The data still go 16 -> 128 (x8).
  with pytest.raises(ValueError, match='model.max_scale'):
    config_lib.validate(config)


def test_loader_applies_typed_overrides():
  config = loading.load(str(REPO / 'configs' / 'demo.py'),
                        ['--config.sampler.steps=7', '--config.eval.scales=(2.5,)'])
  assert config.sampler.steps == 7 and tuple(config.eval.scales) == (2.5,)


@pytest.mark.parametrize('spec, overrides, match', [
    ('configs/nope.py', [], 'config file configs/nope.py does not exist'),
    ('configs/demo.py', ['--config.sampler.stpes=3'], r"sampler.stpes.*did you mean 'steps'"),
    ('configs/demo.py', ['--config.train.batch_size=abc'], 'batch_size'),
    ('configs/demo.py', ['--config.eval.num_images=0'], 'eval.num_images'),
    ('configs/demo.py', ['--config.model.max_scale=3.0'], 'max_scale'),
    ('configs/demo_distill.py', ['--config.sampler.steps=0'], '1 network evaluation or more'),
    ('configs/demo_distill.py', ['--config.sampler.name=ddim'], 'sampler.name = "distilled"'),
    ('configs/demo_distill.py', ['--config.distill.teacher_steps=10'], 'multiple of 4, so that'),
    ('configs/demo_distill.py', ['--config.distill.student_steps=(1,)'],
     'student_steps was removed.*--config.sampler.steps=K'),
    ('configs/demo.py', ['sampler.steps=3'], 'overrides look like'),
])
def test_loader_errors_name_the_problem(monkeypatch, spec, overrides, match):
  monkeypatch.chdir(REPO)
  with pytest.raises(loading.ConfigError, match=match):
    loading.load(spec, overrides)


def _parse(module, argv):
  """(flag values, positional arguments) of `idm-jax COMMAND argv...`, as `cli.run` parses."""
  fv = flags.FlagValues()
  program = ['idm-jax', *cli.overrides_last(argv)]
  module.define_flags(fv, program)
  return fv, loading.parse(fv, program)[1:]


def test_flags_overrides_and_inputs_mix_in_any_order(monkeypatch):
  monkeypatch.chdir(REPO)
  # An override before --config, and a boolean one with its value after a space.
  fv, inputs = _parse(upscale, ['--config.sampler.clip_x0', 'false', 'a.png', '--config',
                                'configs/demo.py', '--scale=2', '--config.eval.num_images', '4',
                                'b.png', '--checkpoint', 'c', '--steps=3', '--sampler', 'ddim'])
  config = flag_groups.config(fv)
  assert inputs == ['a.png', 'b.png'] and fv.scale == 2.0 and fv.checkpoint == 'c'
  assert (config.eval.num_images, config.sampler.steps, config.sampler.name) == (4, 3, 'ddim')
  assert config.sampler.clip_x0 is False


def test_overrides_move_after_the_flags_and_take_their_values():
  assert cli.overrides_last(
      ['--config.a', '1', 'x.png', '--noconfig.b', '--config.c', '--scale=2', '-config.d', '-1',
       '--config=c.py', '--config.e=f', '--', 'y.png', '--config.g=1']) == [
           'x.png', '--scale=2', '--config=c.py', '--config.a=1', '--noconfig.b', '--config.c',
           '-config.d=-1', '--config.e=f', '--', 'y.png', '--config.g=1']
  assert cli.overrides_last(['--config=c.py', '--config.teacher']) == [
      '--config=c.py', '--config.teacher']  # No value: absl's missing-value error, not ''.


def test_bare_and_negated_boolean_overrides(monkeypatch):
  monkeypatch.chdir(REPO)
  fv, _ = _parse(upscale, ['--noconfig.sampler.antithetic', '--config=configs/demo.py',
                           '--config.sampler.tile_cache_condition', '--scale=2', '--checkpoint=c'])
  # The demo's defaults are True and False.
  assert (fv.config.sampler.antithetic, fv.config.sampler.tile_cache_condition) == (False, True)
  # A bare one followed by an input takes the input for its value: the error says how to write it.
  with pytest.raises(loading.ConfigError, match=r"Non-boolean.*'a.png'.*--config.FIELD=true"):
    _parse(upscale, ['--config=configs/demo.py', '--config.sampler.clip_x0', 'a.png'])


def test_distill_teacher_flag_is_the_config_field(monkeypatch):
  monkeypatch.chdir(REPO)
  fv, _ = _parse(train_main, ['--config=configs/demo_distill.py', '--teacher', 'runs/a',
                              '--workdir=w'])
  assert train_main.experiment_config(fv).distill.teacher == 'runs/a'
  fv, _ = _parse(train_main, ['--config=configs/demo_distill.py', '--workdir=w',
                              '--config.distill.teacher=runs/b'])
  assert train_main.experiment_config(fv).distill.teacher == 'runs/b'


def test_a_training_failure_keeps_its_traceback(tmp_path):
  """Past flags and config, an error is the run's: raised (a traceback, exit status 1), not
  turned into one line."""
  with pytest.raises(FileNotFoundError):
    cli.run(['train', f'--config={REPO}/configs/demo.py', f'--workdir={tmp_path}',
             '--config.data.source=folder', f'--config.data.path={tmp_path}/nowhere',
             f'--config.data.eval.path={tmp_path}/nowhere'])


def test_flag_errors_are_one_line_and_name_the_flag(capsys):
  assert cli.run(['upscale', 'a.png', '--num-samples=2']) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and 'num_samples' in err
  assert cli.run(['evaluate', '--checkpoint=c']) == 2
  assert '--config must have a value' in capsys.readouterr().err
  assert cli.run(['nope']) == 2 and 'unknown command' in capsys.readouterr().err
  assert cli.run(['convert', '--help']) == 0
  assert '--torch_checkpoint' in capsys.readouterr().out