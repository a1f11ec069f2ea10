"""Configs: every file in configs/ is valid; a wrong field or type fails early, naming it; the
one loader applies overrides and validates."""
import importlib.util
import pathlib

import ml_collections
import pytest

from idm_jax.cli import main as cli
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


def test_command_line_overrides_are_split_from_the_other_arguments():
  argv = ['evaluate', '--config', 'c.py', '--config.sampler.steps=3', '--scales', '2,3',
          '--config.eval.num_images', '4']
  assert cli.split_overrides(argv) == (
      ['--config.sampler.steps=3', '--config.eval.num_images=4'],
      ['evaluate', '--config', 'c.py', '--scales', '2,3'])


def test_distill_teacher_flag_is_the_config_field():
  expected = ['--config=d.py', '--config.distill.teacher=runs/a', '--workdir=w']
  assert cli.teacher_override(['--config=d.py', '--teacher', 'runs/a', '--workdir=w']) == expected
  assert cli.teacher_override(['--config=d.py', '--teacher=runs/a', '--workdir=w']) == expected
