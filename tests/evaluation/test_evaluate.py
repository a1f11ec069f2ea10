"""The evaluator end to end on a tiny random checkpoint, over the 8 simulated CPU devices."""
import csv
import json
import math

import numpy as np
import pytest
from PIL import Image

from idm_jax.cli import main as cli
from idm_jax.config import loading
from idm_jax.data import image_io
from idm_jax.data import imresize
from idm_jax.data import pipeline
from idm_jax.evaluation import evaluator as evaluator_lib
from idm_jax.evaluation import metrics
from idm_jax.evaluation import report
from tests import float_rounding
from tests.cli import tiny_run


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
  directory = tmp_path_factory.mktemp('run')
  config_path = tiny_run.write_config(directory)
  return config_path, tiny_run.write_checkpoint(directory, config_path)


@pytest.fixture(scope='module')
def evaluated(run_dir, tmp_path_factory):
  """Scales 2 and 6 (config), 2 samples per input: 8 requests per size, one compile each."""
  config_path, checkpoint = run_dir
  out = tmp_path_factory.mktemp('eval')
  config = loading.load(str(config_path), ['--config.eval.num_samples=2'])
  result = evaluator_lib.evaluate_checkpoint(config, checkpoint)
  report.write(result, out)
  return config, out, json.loads((out / 'metrics.json').read_text())


def test_writes_json_csv_and_images(evaluated):
  _, out, results = evaluated
  assert results['step'] == 7 and results['params'] == 'ema' and results['num_devices'] == 8
  assert [s['scale'] for s in results['scales']] == [2.0, 6.0]
  with open(out / 'metrics.csv', newline='') as f:
    rows = list(csv.DictReader(f))
  assert [r['image'] for r in rows] == ['coffee_x2', 'rocket_x2', 'mean'] + [
      'coffee_x6', 'rocket_x6', 'mean']
  for entry in results['scales']:
    assert entry['num_images'] == 2
    scale_rows = [r for r in rows if float(r['scale']) == entry['scale']]
    for column in evaluator_lib.COLUMNS:
      values = [float(r[column]) for r in scale_rows[:-1]]
      assert all(math.isfinite(v) for v in values), column
      assert float(scale_rows[-1][column]) == pytest.approx(np.mean(values), rel=1e-12)
      assert entry['mean'][column] == pytest.approx(np.mean(values), rel=1e-12)
    for record in entry['images']:
      assert record['num_samples'] == 2 and record['psnr_std'] > 0  # Two different samples.
      for name in record['files']:
        with Image.open(out / name) as png:
          assert png.mode == 'RGB' and png.size == tuple(record['hr_hw'][::-1])


def test_metrics_match_the_written_pngs(evaluated):
  """Independent of the evaluator's arrays: recompute from the PNG files and fresh HR/LR pairs."""
  config, out, results = evaluated
  pairs = {p['name']: p for p in pipeline.eval_pairs(config.data, [2.0, 6.0], 2)}
  for entry in results['scales']:
    for record in entry['images']:
      pair = pairs[record['image']]
      crop = math.ceil(entry['scale'])
      srs = [image_io.to_model_range(np.asarray(Image.open(out / name))) for name in record['files']]
      psnr = [metrics.psnr(sr, pair['hr'], crop_border=crop) for sr in srs]
      psnr_y = [metrics.psnr(sr, pair['hr'], crop_border=crop, y_channel=True) for sr in srs]
      lr_cons = [metrics.lr_consistency(sr, pair['lr']) for sr in srs]
      assert record['psnr_mean'] == pytest.approx(np.mean(psnr), abs=1e-9)
      assert record['psnr_y_mean'] == pytest.approx(np.mean(psnr_y), abs=1e-9)
      assert record['psnr_y_std'] == pytest.approx(np.std(psnr_y), abs=1e-9)
      assert record['lr_consistency_mean'] == pytest.approx(np.mean(lr_cons), rel=1e-9)
      ssim = [metrics.ssim(sr, pair['hr'], crop_border=crop) for sr in srs]
      assert record['ssim_mean'] == pytest.approx(np.mean(ssim), abs=1e-12)
      upsampled = np.clip(imresize.imresize(pair['lr'], output_hw=pair['hr'].shape[:2]), -1, 1)
      bicubic = metrics.psnr(upsampled, pair['hr'], crop_border=crop)
      assert record['bicubic']['psnr'] == pytest.approx(bicubic, abs=1e-9)
    assert entry['bicubic']['psnr'] == pytest.approx(
        np.mean([r['bicubic']['psnr'] for r in entry['images']]), rel=1e-12)


def test_cli_raw_params_one_scale(run_dir, tmp_path, capsys):
  config_path, checkpoint = run_dir
  out = tmp_path / 'cli'
  status = cli.run(['evaluate', '--config', str(config_path), '--checkpoint', str(checkpoint),
                    '--output', str(out), '--scales', '2', '--num_samples', '1',
                    '--params', 'raw', '--steps', '2'])
  assert status == 0
  table = capsys.readouterr().out
  assert 'PSNR-Y' in table and 'LR-cons x1e-5' in table
  results = json.loads((out / 'metrics.json').read_text())
  assert results['params'] == 'raw' and results['num_samples'] == 1
  assert [s['scale'] for s in results['scales']] == [2.0]
  assert sorted(p.name for p in (out / 'images').iterdir()) == ['coffee_x2_s0.png',
                                                                'rocket_x2_s0.png']


def test_missing_checkpoint_is_a_one_line_error(run_dir, tmp_path, capsys):
  config_path, _ = run_dir
  status = cli.run(['evaluate', '--config', str(config_path), '--checkpoint',
                    str(tmp_path / 'nowhere'), '--output', str(tmp_path / 'out')])
  assert status == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1
  assert 'does not exist; pass the workdir/checkpoints folder' in err


def test_a_sample_does_not_depend_on_its_batch(run_dir, evaluated, tmp_path):
  """One sample per input batches the requests differently from two; sample 0 is unchanged."""
  config, out, _ = evaluated
  _, checkpoint = run_dir
  config = loading.load(str(run_dir[0]), ['--config.eval.scales=(6.0,)'])
  report.write(evaluator_lib.evaluate_checkpoint(config, checkpoint), tmp_path)
  for name in ('coffee_x6_s0.png', 'rocket_x6_s0.png'):
    with Image.open(tmp_path / 'images' / name) as alone, Image.open(out / 'images' / name) as two:
      float_rounding.assert_8bit_equal_to_rounding(alone, two)


def test_comparison_picture(evaluated):
  _, out, results = evaluated
  rows = [r for entry in results['scales'] for r in entry['images']]
  with Image.open(out / 'comparison.png') as picture:
    # Titles, then one row per pair (24x24 HR crops at x2 and x6), LR | bicubic | IDM | HR with
    # 2-pixel gaps, each above its caption.
    assert picture.size == (4 * 24 + 3 * 2, report.HEADER
                            + len(rows) * (24 + report.CAPTION + 2) - 2)


def test_unknown_override_is_a_one_line_error(run_dir, tmp_path, capsys):
  config_path, checkpoint = run_dir
  status = cli.run(['evaluate', '--config', str(config_path), '--checkpoint', str(checkpoint),
                    '--config.sampler.stepz=3'])
  assert status == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and 'stepz' in err
  status = cli.run(['evaluate', '--config', str(config_path), '--checkpoint', str(checkpoint),
                    '--config.eval.num_samples=0'])
  assert status == 2 and 'eval.num_samples' in capsys.readouterr().err


def test_gray_inputs_get_gray_samples(run_dir, tmp_path, capsys):
  """As `idm-jax upscale` writes them: the mean of the sampled channels, for a gray LR only."""
  config_path, checkpoint = run_dir
  folder = tmp_path / 'photos'
  folder.mkdir()
  rng = np.random.default_rng(0)
  smooth = np.cumsum(np.cumsum(rng.normal(0, 6, (32, 32, 3)), 0), 1)
  smooth = np.clip(smooth - smooth.min() + 40, 0, 255).astype(np.uint8)
  Image.fromarray(smooth[..., 0]).save(folder / 'a_gray.png')  # One band.
  Image.fromarray(smooth).save(folder / 'b_colour.png')
  out = tmp_path / 'out'
  status = cli.run(['evaluate', '--config', str(config_path), '--checkpoint', str(checkpoint),
                    '--output', str(out), '--scales', '2', '--num_samples', '1', '--steps', '2',
                    f'--config.data.eval.path={folder}', '--config.data.source=folder'])
  assert status == 0, capsys.readouterr().err
  results = json.loads((out / 'metrics.json').read_text())
  assert [r['image'] for r in results['scales'][0]['images']] == ['a_gray_x2', 'b_colour_x2']
  gray, colour = (np.asarray(Image.open(out / 'images' / f'{name}_x2_s0.png'), np.int16)
                  for name in ('a_gray', 'b_colour'))
  assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
  assert np.abs(colour[..., 0] - colour[..., 1]).max() > 0
