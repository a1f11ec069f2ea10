"""Every image kind becomes 8-bit RGB; unreadable files give a clear error."""
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from idm_jax.data import image_io


def _write_png16(path, array):
  """A 16-bit PNG written by hand (PIL cannot write 16-bit RGB): gray (H, W) or RGB (H, W, 3)."""
  h, w = array.shape[:2]
  colour_type = 2 if array.ndim == 3 else 0

  def chunk(tag, data):
    return struct.pack('>I', len(data)) + tag + data + struct.pack('>I', zlib.crc32(tag + data))

  rows = b''.join(b'\x00' + array[i].astype('>u2').tobytes() for i in range(h))
  header = struct.pack('>IIBBBBB', w, h, 16, colour_type, 0, 0, 0)
  path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) +
                   chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b''))


@pytest.fixture
def rgb():
  return np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)


@pytest.mark.parametrize('ext', ['png', 'bmp', 'webp'])
def test_lossless_formats_round_trip(tmp_path, rgb, ext):
  path = tmp_path / f'a.{ext}'
  Image.fromarray(rgb).save(path, **({'lossless': True} if ext == 'webp' else {}))
  out = image_io.load_rgb(path)
  assert out.dtype == np.uint8
  np.testing.assert_array_equal(out, rgb)


def test_jpeg_is_close(tmp_path):
  smooth = np.tile(np.linspace(0, 255, 32).astype(np.uint8)[None, :, None], (32, 1, 3))
  Image.fromarray(smooth).save(tmp_path / 'a.jpg', quality=95)
  out = image_io.load_rgb(tmp_path / 'a.jpg')
  assert out.shape == (32, 32, 3)
  assert np.abs(out.astype(int) - smooth).mean() < 3


def test_grayscale_becomes_three_equal_channels(tmp_path):
  gray = np.arange(120, dtype=np.uint8).reshape(12, 10)
  Image.fromarray(gray).save(tmp_path / 'g.png')
  out = image_io.load_rgb(tmp_path / 'g.png')
  np.testing.assert_array_equal(out, np.stack([gray] * 3, axis=-1))


def test_palette_is_resolved(tmp_path):
  palette_image = Image.new('P', (4, 2))
  palette_image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
  palette_image.putdata([0, 1, 0, 1, 1, 1, 0, 0])
  palette_image.save(tmp_path / 'p.png')
  out = image_io.load_rgb(tmp_path / 'p.png')
  red, blue = [255, 0, 0], [0, 0, 255]
  np.testing.assert_array_equal(out[0], [red, blue, red, blue])
  np.testing.assert_array_equal(out[1], [blue, blue, red, red])


def test_rgba_and_gray_alpha_drop_alpha(tmp_path, rgb):
  alpha = np.zeros(rgb.shape[:2], np.uint8)
  Image.fromarray(np.dstack([rgb, alpha])).save(tmp_path / 'a.png')
  np.testing.assert_array_equal(image_io.load_rgb(tmp_path / 'a.png'), rgb)
  Image.fromarray(np.dstack([rgb[..., 0], alpha]), mode='LA').save(tmp_path / 'la.png')
  np.testing.assert_array_equal(image_io.load_rgb(tmp_path / 'la.png'),
                                np.stack([rgb[..., 0]] * 3, axis=-1))


def test_16bit_gray_is_scaled_to_8bit(tmp_path):
  levels = np.array([[0, 257, 65535, 32896]], np.uint16)  # 0, 1, 255 and 128 in 8 bits.
  _write_png16(tmp_path / 'g16.png', levels)
  out = image_io.load_rgb(tmp_path / 'g16.png')
  np.testing.assert_array_equal(out[..., 0], [[0, 1, 255, 128]])
  np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_16bit_rgb_is_within_one_level(tmp_path):
  values = np.random.default_rng(1).integers(0, 65536, (6, 5, 3)).astype(np.uint16)
  _write_png16(tmp_path / 'c16.png', values)
  out = image_io.load_rgb(tmp_path / 'c16.png')
  assert out.dtype == np.uint8 and out.shape == (6, 5, 3)
  assert np.abs(out - values / 257.0).max() <= 1.0


def test_binary_image(tmp_path):
  bits = np.array([[True, False], [False, True]])
  Image.fromarray(bits).save(tmp_path / 'b.png')
  out = image_io.load_rgb(tmp_path / 'b.png')
  np.testing.assert_array_equal(out[..., 1], [[255, 0], [0, 255]])


def test_exif_orientation_is_applied(tmp_path):
  wide = np.zeros((8, 16, 3), np.uint8)
  wide[:, :8] = 255  # Left half white.
  exif = Image.Exif()
  exif[0x0112] = 6  # Rotated 90 degrees clockwise when displayed.
  Image.fromarray(wide).save(tmp_path / 'r.jpg', exif=exif, quality=100)
  out = image_io.load_rgb(tmp_path / 'r.jpg')
  assert out.shape == (16, 8, 3)
  assert out[:8].mean() > 200 and out[8:].mean() < 50  # The white half is now on top.


def test_corrupt_and_missing_files_raise_naming_the_file(tmp_path):
  (tmp_path / 'bad.png').write_bytes(b'\x89PNG\r\n\x1a\n not really a png')
  with pytest.raises(image_io.UnreadableImageError, match='bad.png'):
    image_io.load_rgb(tmp_path / 'bad.png')
  truncated = tmp_path / 'cut.png'
  Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 7).save(tmp_path / 'full.png')
  truncated.write_bytes((tmp_path / 'full.png').read_bytes()[:60])
  with pytest.raises(image_io.UnreadableImageError, match='cut.png'):
    image_io.load_rgb(truncated)
  with pytest.raises(image_io.UnreadableImageError, match='nope.png'):
    image_io.load_rgb(tmp_path / 'nope.png')


@pytest.mark.parametrize('array, expected', [
    (np.array([[0.0, 1.0]]), [[0, 255]]),  # Float in [0, 1].
    (np.array([[0, 65535]], np.uint16), [[0, 255]]),
    (np.array([[3, 200]], np.int64), [[3, 200]]),
    (np.array([[[9], [10]]], np.uint8), [[9, 10]]),  # (H, W, 1).
])
def test_array_conversion(array, expected):
  out = image_io.to_rgb_uint8(array)
  assert out.dtype == np.uint8 and out.shape == (1, 2, 3)
  np.testing.assert_array_equal(out[..., 0], expected)
  np.testing.assert_array_equal(out[..., 2], expected)


def test_array_conversion_rejects_non_images():
  with pytest.raises(image_io.UnreadableImageError, match='shape'):
    image_io.to_rgb_uint8(np.zeros((4, 4, 5)))
