"""MATLAB-bicubic resize against MATLAB's own outputs, PIL, and closed forms."""
import numpy as np
import pytest
from PIL import Image

from idm_jax.data.imresize import imresize

# Outputs of MATLAB's imresize(..., 'bicubic') on double inputs, published as .mat files by
# github.com/sanghyun-son/bicubic_pytorch (test_answer/, made by its gen_test.m), to 10 decimals.
_RAMP8 = np.arange(64.0).reshape(8, 8)  # MATLAB: reshape(linspace(0, 63, 64), [8, 8])'.
_RAMP4 = np.arange(16.0).reshape(4, 4)
_RAMP15 = np.arange(225.0).reshape(15, 15)
_TOPLEFT = np.zeros((4, 4))
_TOPLEFT[0, 0], _TOPLEFT[1, 0], _TOPLEFT[0, 1], _TOPLEFT[0, 3] = 100, 10, 1, 100

_MATLAB = {
    'x2_aa': (_RAMP8, (4, 4), [
        [4.04296875, 6.08203125, 8.10546875, 10.14453125],
        [20.35546875, 22.39453125, 24.41796875, 26.45703125],
        [36.54296875, 38.58203125, 40.60546875, 42.64453125],
        [52.85546875, 54.89453125, 56.91796875, 58.95703125]]),
    'x4_aa': (_RAMP8, (2, 2), [[12.3837890625, 16.6318359375], [46.3681640625, 50.6162109375]]),
    'x3_aa': (_RAMP15, (5, 5), [
        [14.4197530864, 17.5061728395, 20.5185185185, 23.5308641975, 26.6172839506],
        [60.7160493827, 63.8024691358, 66.8148148148, 69.8271604938, 72.9135802469],
        [105.9012345679, 108.987654321, 112.0, 115.012345679, 118.0987654321],
        [151.0864197531, 154.1728395062, 157.1851851852, 160.1975308642, 163.2839506173],
        [197.3827160494, 200.4691358025, 203.4814814815, 206.4938271605, 209.5802469136]]),
    'irregular_aa': (_RAMP8, (5, 7), [
        [2.1845251254, 3.3191373856, 4.4688413715, 5.6204597701, 6.7720781688, 7.9217821547,
         9.0563944149],
        [15.21977157, 16.3543838301, 17.5040878161, 18.6557062147, 19.8073246133, 20.9570285992,
         22.0916408594],
        [28.0640653553, 29.1986776154, 30.3483816014, 31.5, 32.6516183986, 33.8013223846,
         34.9359346447],
        [40.9083591406, 42.0429714008, 43.1926753867, 44.3442937853, 45.4959121839, 46.6456161699,
         47.78022843],
        [53.9436055851, 55.0782178453, 56.2279218312, 57.3795402299, 58.5311586285, 59.6808626144,
         60.8154748746]]),
    'small_aa': (_RAMP4, (3, 3), [[0.7505518764, 2.1004415011, 3.4503311258],
                                  [6.1501103753, 7.5, 8.8498896247],
                                  [11.5496688742, 12.8995584989, 14.2494481236]]),
    'up_topleft': (_TOPLEFT, (5, 5), [
        [108.685225, 27.6970975, -12.4465625, 26.8841925, 109.2025],
        [35.471365, 8.970789, -3.5895625, 6.637437, 26.961],
        [-0.6503125, -0.21221875, 0.39453125, -1.60790625, -6.53125],
        [-0.768075, -0.18963, 0.0459375, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0]]),
}
# up_up_irregular_aa: 8x8 ramp -> (11, 13); its first row and first column.
_UP_ROW0 = [-0.5487371021, -0.1184059687, 0.5673871583, 1.1827717737, 1.7981563891, 2.4135410045,
            3.0289256198, 3.6443102352, 4.2596948506, 4.875079466, 5.4904640814, 6.1762572084,
            6.6065883417]
_UP_COL0 = [-0.5487371021, 4.2540427627, 10.4677918236, 16.2859736417, 22.1041554599,
            27.9223372781, 33.7405190963, 39.5587009145, 45.3768827327, 51.5906317935,
            56.3934116583]


@pytest.mark.parametrize('case', sorted(_MATLAB))
def test_matches_matlab_on_doubles(case):
  image, out_hw, expected = _MATLAB[case]
  np.testing.assert_allclose(imresize(image, output_hw=out_hw), expected, atol=1e-9)


def test_matches_matlab_upsampling_irregular():
  out = imresize(_RAMP8, output_hw=(11, 13))
  np.testing.assert_allclose(out[0], _UP_ROW0, atol=1e-9)
  np.testing.assert_allclose(out[:, 0], _UP_COL0, atol=1e-9)


@pytest.mark.parametrize('case', ['x2_aa', 'x4_aa', 'x3_aa', 'irregular_aa'])
def test_uint8_within_one_level_of_matlab(case):
  image, out_hw, expected = _MATLAB[case]
  out = imresize(image.astype(np.uint8), output_hw=out_hw)
  assert out.dtype == np.uint8
  assert np.abs(out.astype(np.float64) - np.asarray(expected)).max() <= 1.0


def test_uint8_saturates_and_rounds_half_away_from_zero():
  # A black/white edge rings above 255 and below 0 on upsampling: MATLAB clips.
  edge = np.zeros((4, 8), np.uint8)
  edge[:, 4:] = 255
  out = imresize(edge, scale=3)
  ref = imresize(edge.astype(np.float64), scale=3)
  assert ref.max() > 255 and ref.min() < 0
  assert out.max() == 255 and out.min() == 0


def test_interior_matches_pil_float_bicubic():
  # PIL's BICUBIC is the same antialiased a = -0.5 kernel with the same pixel-centre mapping, but
  # truncates the kernel at the borders instead of mirroring: away from the borders both agree.
  rng = np.random.default_rng(0)
  image = rng.uniform(0, 255, (96, 80)).astype(np.float32)
  for out_h, out_w in [(12, 10), (37, 23), (48, 40), (150, 130)]:
    ours = imresize(image.astype(np.float64), output_hw=(out_h, out_w))
    pil = np.asarray(Image.fromarray(image).resize((out_w, out_h), Image.Resampling.BICUBIC))
    sy, sx = image.shape[0] / out_h, image.shape[1] / out_w
    # Output i reads inputs within (i + 0.5) * s +- 2 * max(s, 1) of its centre.
    def interior(n, s, size):
      centre = (np.arange(n) + 0.5) * s
      reach = 2 * max(s, 1) + 1
      return (centre - reach >= 0) & (centre + reach <= size)
    mask = np.outer(interior(out_h, sy, image.shape[0]), interior(out_w, sx, image.shape[1]))
    assert mask.sum() > 0.2 * mask.size
    np.testing.assert_allclose(ours[mask], pil[mask], atol=2e-3)


def test_linear_ramp_is_reproduced_in_the_interior():
  # The cubic kernel reproduces linear functions: at scale 1/2 output j sits at input 2j + 0.5.
  ramp = np.tile(np.arange(64.0), (6, 1))
  out = imresize(ramp, output_hw=(3, 32))
  np.testing.assert_allclose(out[:, 4:-4], np.tile(2 * np.arange(4, 28) + 0.5, (3, 1)), atol=1e-12)


def test_constant_image_stays_constant():
  out = imresize(np.full((30, 17, 3), 0.25, np.float32), output_hw=(7, 40))
  np.testing.assert_allclose(out, 0.25, atol=1e-6)


def test_scale_uses_ceil_and_keeps_dtype():
  image = np.zeros((10, 7, 3), np.float32)
  out = imresize(image, scale=0.5)
  assert out.shape == (5, 4, 3) and out.dtype == np.float32


def test_batch_equals_per_image():
  rng = np.random.default_rng(1)
  batch = rng.uniform(size=(3, 20, 24, 3)).astype(np.float32)
  out = imresize(batch, output_hw=(9, 11))
  for i in range(3):
    np.testing.assert_allclose(out[i], imresize(batch[i], output_hw=(9, 11)), atol=1e-6)


def test_channels_are_independent():
  rng = np.random.default_rng(2)
  image = rng.uniform(size=(16, 16, 3))
  out = imresize(image, scale=0.25)
  for c in range(3):
    np.testing.assert_allclose(out[..., c], imresize(image[..., c], scale=0.25), atol=1e-12)


def test_bad_arguments():
  with pytest.raises(ValueError, match='exactly one'):
    imresize(np.zeros((4, 4)), scale=0.5, output_hw=(2, 2))
  with pytest.raises(ValueError, match='uint8 or float'):
    imresize(np.zeros((4, 4), np.int32), scale=0.5)
