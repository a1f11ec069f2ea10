"""The fixed validation set: sizes, LR consistency, official LR, crops, the embedded split."""
import numpy as np
import pytest
from PIL import Image

from idm_jax.config import data as config_lib
from idm_jax.data import embedded
from idm_jax.data import imresize
from idm_jax.data import pipeline


def _to_uint8(x):
  return np.round((x + 1) * 127.5).astype(np.uint8)


def test_embedded_validation_pairs():
  cfg = config_lib.default_data_config()
  out = pipeline.eval_pairs(cfg, [2, 3, 4], num_images=100)
  assert [d['name'] for d in out] == ['coffee_x2', 'coffee_x3', 'coffee_x4',
                                      'rocket_x2', 'rocket_x3', 'rocket_x4']
  coffee = embedded.load('coffee')  # 400 x 600.
  for d in out:
    s = int(d['scale'])
    h, w = d['lr'].shape[:2]
    assert d['hr'].shape == (h * s, w * s, 3)
    assert d['hr'].dtype == d['lr'].dtype == np.float32
    hr = _to_uint8(d['hr'])
    # LR consistency: the LR is MATLAB-bicubic of the HR, and the HR is the image's top-left.
    np.testing.assert_array_equal(_to_uint8(d['lr']), imresize.imresize(hr, scale=1 / s))
    if d['name'].startswith('coffee'):
      assert (h, w) == (400 // s, 600 // s)
      np.testing.assert_array_equal(hr, coffee[:h * s, :w * s])


def test_center_crop_and_fractional_scale():
  cfg = config_lib.default_data_config()
  cfg.eval.update(crop_size=96)
  out = pipeline.eval_pairs(cfg, [4, 2.5], num_images=1)
  assert out[0]['hr'].shape == (96, 96, 3) and out[0]['lr'].shape == (24, 24, 3)
  assert out[1]['lr'].shape == (38, 38, 3) and out[1]['hr'].shape == (95, 95, 3)
  assert out[1]['name'] == 'coffee_x2.5'
  coffee = embedded.load('coffee')
  np.testing.assert_array_equal(_to_uint8(out[0]['hr']), coffee[152:248, 252:348])


def test_pil_degradation_is_pil_bicubic():
  cfg = config_lib.default_data_config()
  cfg.update(degradation='pil_bicubic')
  cfg.eval.update(crop_size=64)
  d = pipeline.eval_pairs(cfg, [4], num_images=1)[0]
  hr = _to_uint8(d['hr'])
  expected = np.asarray(Image.fromarray(hr).resize((16, 16), Image.Resampling.BICUBIC))
  np.testing.assert_array_equal(_to_uint8(d['lr']), expected)


def test_folder_with_official_lr(write_folder, folder_config):
  rng = np.random.default_rng(0)
  lrs = [rng.integers(0, 256, (10, 14, 3), dtype=np.uint8) for _ in range(2)]
  hrs = [np.kron(lr, np.ones((2, 2, 1), np.uint8)) for lr in lrs]
  cfg = folder_config('', lr_scale=2)
  cfg.eval.update(path=write_folder('hr', hrs), lr_path=write_folder('lr', lrs, suffix='x2'),
                  crop_size=8)
  out = pipeline.eval_pairs(cfg, [2, 4], num_images=100)
  official = out[0]
  np.testing.assert_array_equal(_to_uint8(official['lr']), lrs[0][3:7, 5:9])  # Centre 4 x 4.
  np.testing.assert_array_equal(_to_uint8(official['hr']), hrs[0][6:14, 10:18])
  assert out[1]['scale'] == 4 and out[1]['lr'].shape == (2, 2, 3)  # Degraded from the HR.


def test_folder_eval_needs_a_path(folder_config):
  with pytest.raises(ValueError, match='data.eval.path'):
    pipeline.eval_pairs(folder_config('/some/train/folder'), [2], num_images=100)


def test_embedded_split_is_fixed_disjoint_and_loads_offline():
  assert not set(embedded.TRAIN) & set(embedded.VALIDATION)
  for name in embedded.TRAIN + embedded.VALIDATION:
    image = embedded.load(name)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert min(image.shape[:2]) >= 300
    assert np.ptp(image[..., 0].astype(int) - image[..., 2]) > 0  # Colour, not gray.
