"""A short run through `train_and_evaluate`: the loss falls, logs and validation are written,
and `idm-jax evaluate` of its checkpoint reports what its validation did."""
import json
import pathlib

import numpy as np
from PIL import Image

from idm_jax.cli import main as cli
from idm_jax.evaluation import report as report_lib
from idm_jax.training import train
from tests import float_rounding
from tests import tensorboard_events
from tests.training import common

MICRO_CONFIG = pathlib.Path(__file__).with_name('micro_config.py')


def test_short_run_learns_and_reports(tmp_path):
  config = common.micro_config()  # Only host-side fields change: the step program is shared.
  config.train.num_steps = 60
  config.checkpoint.every_steps = 30
  config.logging.log_every_steps = 10
  config.eval.at_end = True
  state = train.train_and_evaluate(config, tmp_path)
  assert int(state.step) == 60

  tags = tensorboard_events.scalars(tmp_path)
  loss = [v for _, v in sorted(tags['loss'])]
  assert len(loss) == 6 and np.mean(loss[-2:]) < 0.8 * loss[0], loss
  for tag in ('learning_rate', 'grad_norm', 'steps_per_sec', 'images_per_sec', 'compile_count',
              'val_psnr', 'val_psnr_x2_bicubic', 'time_share/data', 'time_share/checkpoint'):
    assert tag in tags, tag
  assert tensorboard_events.read(tmp_path).Tags()['images'] == ['validation']
  assert [v for _, v in tags['compile_count']] == [1.0] * 6  # One HR bucket: one compile.

  report = json.loads((tmp_path / 'eval' / 'metrics.json').read_text())
  assert report['step'] == 60 and [s['scale'] for s in report['scales']] == [2.0]
  picture = np.asarray(Image.open(tmp_path / 'eval' / 'comparison.png'))
  # Titles, then LR | bicubic | IDM | HR with 2-pixel gaps above their caption.
  assert picture.shape == (report_lib.HEADER + 16 + report_lib.CAPTION, 4 * 16 + 3 * 2, 3)
  top, idm_left = report_lib.HEADER, 2 * (16 + 2)
  sample = report['scales'][0]['images'][0]['files'][0]
  np.testing.assert_array_equal(picture[top:top + 16, idm_left:idm_left + 16],
                                np.asarray(Image.open(tmp_path / 'eval' / sample)))
  # The titles and the caption are drawn (dark text on white), over every column.
  for band in (picture[:top], picture[top + 16:]):
    for column in range(4):
      assert band[:, column * 18:column * 18 + 16].min() < 128, column
  assert (tmp_path / 'checkpoints' / '60').is_dir()

  # The same checkpoint through the command line: the numbers of the training's validation.
  out = tmp_path / 'cli_eval'
  assert cli.run(['evaluate', '--config', str(MICRO_CONFIG), '--checkpoint',
                  str(tmp_path / 'checkpoints'), '--output', str(out)]) == 0
  again = json.loads((out / 'metrics.json').read_text())
  assert again['step'] == 60
  got, expected = again['scales'][0], report['scales'][0]
  assert [r['image'] for r in got['images']] == [r['image'] for r in expected['images']]
  # Two compilations of the same sampling: the same images to 8-bit rounding, so metrics agree
  # to a rounding flip or two (a different key or image would move them by far more).
  for record in got['images']:
    for name in record['files']:
      float_rounding.assert_8bit_equal_to_rounding(Image.open(out / name),
                                                   Image.open(tmp_path / 'eval' / name))
  for column, atol in (('psnr_mean', 0.01), ('ssim_mean', 1e-3), ('lr_consistency_mean', 0.01)):
    np.testing.assert_allclose(got['mean'][column], expected['mean'][column], atol=atol)
  np.testing.assert_allclose(got['mean']['psnr_mean'], tags['val_psnr_x2'][-1][1], atol=0.01)
