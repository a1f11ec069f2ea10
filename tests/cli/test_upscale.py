"""`idm-jax upscale` on odd inputs, sizes, tiling, and every per-input and global error.

The inputs share a few (LR, output) shapes so the whole file compiles the sampler five times.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from idm_jax.cli import main as cli
from idm_jax.config import diffusion as diffusion_config
from idm_jax.config import loading
from idm_jax.data import image_io
from idm_jax.data import imresize
from idm_jax.diffusion import sampling
from idm_jax.inference import sampler as inference_sampler
from idm_jax.scale import scale_to_p
from tests import float_rounding
from tests.cli import tiny_run


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  """(config path, checkpoint, input folder) with images of every kind the upscaler handles."""
  directory = tmp_path_factory.mktemp('upscale')
  config_path = tiny_run.write_config(directory)
  checkpoint = tiny_run.write_checkpoint(directory, config_path)
  inputs = directory / 'inputs'
  inputs.mkdir()
  rng = np.random.default_rng(0)
  rgb = lambda h, w: rng.integers(0, 256, (h, w, 3), np.uint8)
  gray = rgb(8, 8)[..., 0]
  Image.fromarray(gray).save(inputs / 'gray.png')
  Image.fromarray(np.repeat(gray[..., None], 3, axis=-1)).save(inputs / 'gray_as_rgb.png')
  rgba = np.concatenate([rgb(8, 8), np.tile(np.arange(0, 256, 32, np.uint8), (8, 1))[..., None]],
                        axis=-1)
  Image.fromarray(rgba).save(inputs / 'rgba.png')
  gray16 = rng.integers(0, 65536, (8, 8)).astype(np.uint16)
  Image.fromarray(gray16).save(inputs / 'gray16.png')
  Image.fromarray(rgb(8, 8)).save(inputs / 'photo.webp', lossless=True)
  palette = Image.frombytes('P', (8, 8), rng.integers(0, 4, (8, 8), np.uint8).tobytes())
  palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
  palette.save(inputs / 'palette.png', transparency=0)  # Index 0 transparent.
  Image.fromarray(rgb(4, 6)).save(inputs / 'wide.jpg')  # 6 wide, 4 high.
  Image.fromarray(rgb(1, 1)).save(inputs / 'dot.png')
  Image.fromarray(rgb(10, 10)).save(inputs / 'big.png')
  (inputs / 'notes.png').write_text('not an image\n')
  return config_path, checkpoint, inputs


def _upscale(setup, tmp_path, names, *options, config_path=None):
  """Runs the CLI in-process; returns (exit status, output folder)."""
  default_config, checkpoint, inputs = setup
  out = tmp_path / 'out'
  argv = ['upscale', *(str(inputs / n) for n in names), '--checkpoint', str(checkpoint),
          '--config', str(config_path or default_config), '--output', str(out), *options]
  return cli.run(argv), out


def _error_line(err: str, needle: str) -> str:
  """The one stderr line holding `needle` (a message must not spill onto other lines)."""
  lines = [line for line in err.splitlines() if needle in line]
  assert len(lines) == 1, err
  return lines[0]


def _size_mode(path):
  with Image.open(path) as image:
    return image.size, image.mode


def test_odd_inputs_and_bad_files_in_one_call(setup, tmp_path, capsys):
  names = ['gray.png', 'missing.png', 'rgba.png', 'gray16.png', 'notes.png', 'photo.webp',
           'palette.png', 'wide.jpg']
  status, out = _upscale(setup, tmp_path, names, '--scale', '2')
  assert status == 1  # Two inputs failed; the other six were written.
  assert _size_mode(out / 'gray_x2.png') == ((16, 16), 'L')
  assert _size_mode(out / 'rgba_x2.png') == ((16, 16), 'RGBA')
  assert _size_mode(out / 'gray16_x2.png') == ((16, 16), 'L')
  assert _size_mode(out / 'photo_x2.png') == ((16, 16), 'RGB')
  assert _size_mode(out / 'palette_x2.png') == ((16, 16), 'RGBA')
  assert _size_mode(out / 'wide_x2.png') == ((12, 8), 'RGB')
  with Image.open(setup[2] / 'rgba.png') as source, Image.open(out / 'rgba_x2.png') as result:
    expected_alpha = imresize.imresize(np.asarray(source)[..., 3], output_hw=(16, 16))
    np.testing.assert_array_equal(np.asarray(result)[..., 3], expected_alpha)
  err = capsys.readouterr().err
  assert 'no such file' in _error_line(err, 'missing.png')
  assert 'check the path' in _error_line(err, 'missing.png')
  assert 'pass a PNG, JPEG, WebP or BMP image' in _error_line(err, 'notes.png')
  assert 'upscaled 6 of 8 inputs' in err


def test_gray_content_gives_gray_output_in_the_files_mode(setup, tmp_path):
  status, out = _upscale(setup, tmp_path, ['gray.png', 'gray_as_rgb.png', 'big.png'],
                         '--scale', '2', '--seed', '3')
  assert status == 0
  with Image.open(out / 'gray_x2.png') as one_band, \
       Image.open(out / 'gray_as_rgb_x2.png') as three_bands:
    assert (one_band.mode, three_bands.mode) == ('L', 'RGB')
    gray, rgb = np.asarray(one_band), np.asarray(three_bands)
  # Equal channels, and the same picture as the one-band file of the same content and seed.
  np.testing.assert_array_equal(rgb, np.repeat(gray[..., None], 3, axis=-1))
  with Image.open(out / 'big_x2.png') as colour:
    colour = np.asarray(colour).astype(int)
  assert np.abs(colour[..., 0] - colour[..., 1]).max() > 0  # A colour input stays in colour.


def test_scale_7_3_of_one_pixel_with_two_samples(setup, tmp_path):
  status, out = _upscale(setup, tmp_path, ['dot.png'], '--scale', '7.3', '--num_samples', '2',
                         '--seed', '3')
  assert status == 0
  first, second = (np.asarray(Image.open(out / f'dot_x7.3_s{k}.png')) for k in (0, 1))
  assert first.shape == second.shape == (7, 7, 3)  # floor(7.3 * 1 + 0.5) = 7.
  assert np.any(first != second)


def test_each_sample_is_the_sampler_run_alone_on_its_seed_key(setup, tmp_path):
  """Batched together, sample k equals `sampling.sample` of the input alone with the key
  fold_in(key(seed), k): the outputs do not depend on --num_samples or the batching."""
  config_path, checkpoint, inputs = setup
  status, out = _upscale(setup, tmp_path, ['big.png'], '--scale', '2', '--num_samples', '3',
                         '--seed', '5')
  assert status == 0
  config = loading.load(str(config_path))
  model, _ = inference_sampler.load_model(
      config.model, checkpoint, sharding=jax.sharding.SingleDeviceSharding(jax.devices()[0]))
  rgb = np.asarray(Image.open(inputs / 'big.png').convert('RGB'))
  p = scale_to_p([2.0], config.model.max_scale)
  for k in range(3):
    alone = sampling.sample(model, jnp.asarray(image_io.to_model_range(rgb))[None], (20, 20),
                            jnp.asarray(p), jax.random.fold_in(jax.random.key(5), k),
                            diffusion_config.resolve_sampler(config), config.diffusion)
    with Image.open(out / f'big_x2_s{k}.png') as written:
      float_rounding.assert_8bit_equal_to_rounding(written, image_io.to_uint8(np.asarray(alone[0])))


def test_never_tiling_without_a_budget(setup, tmp_path):
  """sampler.tile_size = 0 and no --max_pixels: no tiles and no budget, whatever the size."""
  status, out = _upscale(setup, tmp_path, ['big.png'], '--scale', '4',
                         '--config.sampler.tile_size', '0')
  assert status == 0 and _size_mode(out / 'big_x4.png') == ((40, 40), 'RGB')


def test_scale_one_and_exact_size(setup, tmp_path):
  status, out = _upscale(setup, tmp_path, ['wide.jpg'], '--scale', '1')
  assert status == 0 and _size_mode(out / 'wide_x1.png') == ((6, 4), 'RGB')
  status, out = _upscale(setup, tmp_path, ['wide.jpg'], '--size', '12x8')
  assert status == 0 and _size_mode(out / 'wide_12x8.png') == ((12, 8), 'RGB')


def test_size_smaller_than_an_input_fails_only_that_input(setup, tmp_path, capsys):
  status, out = _upscale(setup, tmp_path, ['big.png', 'wide.jpg'], '--size', '12x8')
  assert status == 1
  assert _size_mode(out / 'wide_12x8.png') == ((12, 8), 'RGB')
  line = _error_line(capsys.readouterr().err, 'big.png')
  assert 'smaller than the 10x10 input' in line and 'pass a --size of at least 10x10' in line


def test_scale_below_one_fails_before_loading(setup, tmp_path, capsys):
  status, _ = _upscale(setup, tmp_path, ['gray.png'], '--scale', '0.5')
  assert status == 2
  line = _error_line(capsys.readouterr().err, '--scale 0.5')
  assert 'below 1' in line and 'pass --scale >= 1' in line


def test_budget_without_tiling_is_refused_then_tiling_fits_it(setup, tmp_path, capsys):
  status, _ = _upscale(setup, tmp_path, ['gray.png'], '--scale', '2', '--tile_size', '0',
                       '--max_pixels', '100')
  assert status == 1
  line = _error_line(capsys.readouterr().err, 'gray.png')
  assert 'output 16x16 (256 pixels) exceeds the budget of 100 pixels' in line
  assert 'enable tiling with --tile_size=10' in line
  # A call of one sample sees its mean_of draws: 16x16 fits 300 pixels, 2 x 256 do not.
  status, _ = _upscale(setup, tmp_path, ['gray.png'], '--scale', '2', '--tile_size', '0',
                       '--max_pixels', '300', '--config.sampler.mean_of=2')
  assert status == 1
  assert ('(256 pixels x 2 draws (sampler.mean_of)) exceeds the budget of 300 pixels per network '
          'call; enable tiling with --tile_size=12') in _error_line(capsys.readouterr().err,
                                                                    'gray.png')
  status, out = _upscale(setup, tmp_path, ['gray.png'], '--scale', '2', '--tile_size', '8',
                         '--max_pixels', '100')
  assert status == 0 and _size_mode(out / 'gray_x2.png') == ((16, 16), 'L')


def test_tiles_that_cannot_fit_name_the_fix(setup, tmp_path, capsys):
  status, _ = _upscale(setup, tmp_path, ['dot.png', 'gray.png'], '--scale', '7.3',
                       '--tile_size', '4', '--max_pixels', '16')
  assert status == 1
  err = capsys.readouterr().err
  # 1 -> 7 pixels: tiles must be whole multiples of 7 output pixels.
  assert 'an integer --scale always tiles' in _error_line(err, 'dot.png')
  # 8 -> 58 pixels: tiles of 4 are too small for the overlap of 4.
  assert 'pass a larger --tile_size' in _error_line(err, 'gray.png')


def test_checkpoint_config_mismatch(setup, tmp_path, capsys):
  status, _ = _upscale(setup, tmp_path, ['gray.png'], '--scale', '2',
                       config_path=f'{setup[0]}:wider')
  assert status == 2
  line = _error_line(capsys.readouterr().err, 'error:')
  assert 'encoder_features: checkpoint 8, config 16' in line
  assert 'Use the config the checkpoint was trained with' in line
