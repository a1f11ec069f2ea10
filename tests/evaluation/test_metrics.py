"""Metrics against scikit-image and closed forms."""

import sys
import types

import numpy as np
import pytest
from skimage import color
from skimage import metrics as skmetrics

from idm_jax.data import image_io
from idm_jax.evaluation import metrics


def _pair(shape=(2, 37, 29, 3), seed=0):
  """A target in [-1, 1] and a noisy prediction of it."""
  rng = np.random.default_rng(seed)
  target = rng.uniform(-1.0, 1.0, shape).astype(np.float32)
  pred = np.clip(target + 0.2 * rng.standard_normal(shape), -1, 1)
  return pred.astype(np.float32), target


def _reference(image, crop, y_channel):
  """[0, 255] float64 levels as skimage sees them, cropped, RGB or Y."""
  image = np.round((np.clip(image.astype(np.float64), -1, 1) + 1) * 127.5)
  if crop:
    image = image[crop:-crop, crop:-crop]
  return color.rgb2ycbcr(image / 255.0)[..., :1] if y_channel else image


@pytest.mark.parametrize("crop", [0, 4])
@pytest.mark.parametrize("y_channel", [False, True])
def test_psnr_and_ssim_match_skimage(crop, y_channel):
  pred, target = _pair()
  ours_psnr = metrics.psnr(pred, target, crop_border=crop, y_channel=y_channel)
  ours_ssim = metrics.ssim(pred, target, crop_border=crop, y_channel=y_channel)
  assert ours_psnr.shape == ours_ssim.shape == (2,)
  for i in range(2):
    p, t = (_reference(a[i], crop, y_channel) for a in (pred, target))
    ref_psnr = skmetrics.peak_signal_noise_ratio(t, p, data_range=255)
    # skimage's mean SSIM drops the 5-pixel rim: the valid region.
    ref_ssim = skmetrics.structural_similarity(
        t, p, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=255, channel_axis=-1)
    np.testing.assert_allclose(ours_psnr[i], ref_psnr, rtol=0, atol=1e-4)
    np.testing.assert_allclose(ours_ssim[i], ref_ssim, rtol=0, atol=1e-4)


def test_ssim_matches_skimage_full_map_cropped():
  pred, target = _pair(shape=(40, 33, 3), seed=1)
  p, t = (_reference(a, 0, False) for a in (pred, target))
  _, ssim_map = skmetrics.structural_similarity(
      t, p, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
      data_range=255, channel_axis=-1, full=True)
  np.testing.assert_allclose(
      metrics.ssim(pred, target), ssim_map[5:-5, 5:-5].mean(), atol=1e-4)


def test_unquantized_metrics_match_skimage_on_floats():
  pred, target = _pair(shape=(24, 24, 3), seed=2)
  p, t = ((a.astype(np.float64) + 1) * 127.5 for a in (pred, target))
  np.testing.assert_allclose(
      metrics.psnr(pred, target, quantize=False),
      skmetrics.peak_signal_noise_ratio(t, p, data_range=255), atol=1e-4)
  np.testing.assert_allclose(
      metrics.ssim(pred, target, quantize=False),
      skmetrics.structural_similarity(
          t, p, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
          data_range=255, channel_axis=-1), atol=1e-4)


def test_psnr_of_constant_offset():
  target = np.full((16, 16, 3), -0.5, np.float32)
  pred = image_io.to_model_range(
      image_io.from_model_range(target).astype(np.uint8) + np.uint8(3))
  np.testing.assert_allclose(
      metrics.psnr(pred, target), 20 * np.log10(255 / 3), atol=1e-10)
  np.testing.assert_allclose(
      metrics.psnr(pred, target, y_channel=True),
      20 * np.log10(255 / (3 * 219 / 255)), atol=1e-10)


def test_identical_images():
  _, target = _pair(shape=(20, 20, 3))
  assert metrics.psnr(target, target) == np.inf
  assert metrics.ssim(target, target) == pytest.approx(1.0, abs=1e-12)
  assert metrics.ssim(target, target, y_channel=True) == pytest.approx(1.0)


def test_y_of_pure_colours():
  colours = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0],
                      [0, 0, 255]], np.float64)
  np.testing.assert_allclose(
      metrics.rgb_to_y(colours[None])[0, :, 0],
      [16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966], atol=1e-10)


def test_range_conversions():
  levels = np.arange(256, dtype=np.uint8)[None, :, None]
  signed = image_io.to_model_range(levels)
  assert signed.min() == -1.0 and signed.max() == 1.0
  np.testing.assert_array_equal(image_io.from_model_range(signed), levels)
  np.testing.assert_array_equal(
      image_io.from_model_range(np.array([-3.0, 0.0, 3.0])), [0, 128, 255])
  assert image_io.from_model_range(np.array([0.0]), quantize=False)[0] == 127.5
  with pytest.raises(TypeError, match="to_model_range"):
    metrics.psnr(levels, levels)


def test_crop_border_for_scale():
  assert [metrics.crop_border_for_scale(s) for s in (2, 4, 5.3, 12)] == [
      2, 4, 6, 12]


def test_crop_removes_border_errors():
  _, target = _pair(shape=(30, 30, 3))
  pred = target.copy()
  pred[:3] = -pred[:3]
  assert np.isfinite(metrics.psnr(pred, target, crop_border=2))
  assert metrics.psnr(pred, target, crop_border=3) == np.inf
  assert metrics.ssim(pred, target, crop_border=3) == pytest.approx(1.0)


def test_errors():
  with pytest.raises(ValueError, match="one shape"):
    metrics.psnr(np.zeros((8, 8, 3)), np.zeros((8, 9, 3)))
  with pytest.raises(ValueError, match="11x11"):
    metrics.ssim(np.zeros((16, 16, 3)), np.zeros((16, 16, 3)), crop_border=3)
  with pytest.raises(ValueError, match="3 channels"):
    metrics.psnr(np.zeros((8, 8, 1)), np.zeros((8, 8, 1)), y_channel=True)


def _box_downsample(image, output_hw):
  """A stand-in for imresize with its signature: block means."""
  h, w = output_hw
  fh, fw = image.shape[0] // h, image.shape[1] // w
  return image.reshape(h, fh, w, fw, -1).mean(axis=(1, 3))


def test_lr_consistency_uses_imresize_contract(monkeypatch):
  fake = types.ModuleType("idm_jax.data.imresize")
  fake.imresize = _box_downsample
  monkeypatch.setitem(sys.modules, "idm_jax.data.imresize", fake)
  rng = np.random.default_rng(3)
  sr = image_io.to_model_range(rng.integers(0, 256, (2, 12, 8, 3), np.uint8))
  lr = image_io.to_model_range(rng.integers(0, 256, (2, 3, 2, 3), np.uint8))
  sr01, lr01 = (sr + 1) / 2, (lr + 1) / 2
  expected = [np.mean((_box_downsample(s, (3, 2)) - l) ** 2) * 1e5
              for s, l in zip(sr01, lr01)]
  np.testing.assert_allclose(metrics.lr_consistency(sr, lr), expected,
                             rtol=1e-5)
  assert metrics.lr_consistency(sr[0], lr[0]) == pytest.approx(expected[0])
  exact_lr = _box_downsample(sr01[0], (3, 2)) * 2 - 1
  np.testing.assert_allclose(
      metrics.lr_consistency(sr[:1], exact_lr[None], quantize=False), [0.0],
      atol=1e-6)


def test_lr_consistency_with_real_imresize():
  imresize = pytest.importorskip("idm_jax.data.imresize").imresize
  rng = np.random.default_rng(4)
  sr = rng.uniform(0, 1, (32, 24, 3))
  lr = np.asarray(imresize(sr, output_hw=(8, 6)))
  assert metrics.lr_consistency(sr * 2 - 1, lr * 2 - 1, quantize=False) == (
      pytest.approx(0.0, abs=1e-6))
  assert metrics.lr_consistency(sr * 2 - 1, lr * 2 - 1) < 1.0


def test_image_metrics_and_summarize(monkeypatch):
  fake = types.ModuleType("idm_jax.data.imresize")
  fake.imresize = _box_downsample
  monkeypatch.setitem(sys.modules, "idm_jax.data.imresize", fake)
  preds, target = _pair(shape=(3, 24, 24, 3), seed=5)
  lr = np.zeros((6, 6, 3), np.float32)
  records = [metrics.image_metrics(p, target[0], lr, crop_border=2)
             for p in preds]
  assert set(records[0]) == {
      "psnr", "ssim", "psnr_y", "ssim_y", "lr_consistency"}
  assert records[0]["psnr"] == pytest.approx(
      float(metrics.psnr(preds[0], target[0], crop_border=2)))
  summary = metrics.summarize(records)
  values = np.array([r["ssim_y"] for r in records])
  assert summary["ssim_y_mean"] == pytest.approx(values.mean())
  assert summary["ssim_y_std"] == pytest.approx(values.std())
  assert metrics.summarize(records[:1])["psnr_std"] == 0.0
  assert set(metrics.image_metrics(preds[0], target[0])) == {
      "psnr", "ssim", "psnr_y", "ssim_y"}
  with pytest.raises(ValueError, match="different keys"):
    metrics.summarize([{"psnr": 1.0}, {"ssim": 1.0}])
