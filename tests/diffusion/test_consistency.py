"""Consistency projection: degradation matrices against the libraries, the projection against
closed forms, and the samplers' outputs against their LR inputs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from idm_jax.config import diffusion as config
from idm_jax.data import degradation
from idm_jax.data import imresize
from idm_jax.diffusion import consistency
from idm_jax.diffusion import sampling
from tests.diffusion import stand_in

# (LR (h, w), output (H, W)): square, non-square, non-integer, one side unscaled.
SIZES = [((4, 4), (12, 12)), ((5, 3), (12, 11)), ((7, 6), (16, 23)), ((6, 6), (6, 15))]


@pytest.mark.parametrize('in_len,out_len', [(48, 16), (37, 11), (40, 13), (12, 12), (9, 4)])
def test_pil_matrix_is_pillows_resize(in_len, out_len):
  """Pillow resizes float ('F') images without rounding: its output is the matrix times x."""
  x = np.random.default_rng(0).uniform(0, 1, (in_len, 5)).astype(np.float32)
  ours = degradation.axis_matrix('pil_bicubic', in_len, out_len) @ x
  pil = np.asarray(Image.fromarray(x, 'F').resize((5, out_len), Image.Resampling.BICUBIC))
  np.testing.assert_allclose(ours, pil, atol=2e-6)


@pytest.mark.parametrize('lr_hw,out_hw', SIZES)
def test_matlab_matrices_are_imresize(lr_hw, out_hw):
  x = np.random.default_rng(1).uniform(-1, 1, (2, *out_hw, 3))
  p = consistency.make_projector('matlab_bicubic', lr_hw, out_hw)
  np.testing.assert_allclose(consistency.downsample(p, jnp.asarray(x, jnp.float32)),
                             imresize.imresize(x, output_hw=lr_hw), atol=2e-6)


@pytest.mark.parametrize('method', ['matlab_bicubic', 'pil_bicubic'])
@pytest.mark.parametrize('lr_hw,out_hw', SIZES)
def test_projection_is_the_least_squares_correction(method, lr_hw, out_hw):
  """x + A^+ (y - A x) with A the full (h w, H W) Kronecker matrix, in float64: A x = y, and a
  consistent image is unchanged."""
  rng = np.random.default_rng(2)
  x = rng.uniform(-1, 1, (2, *out_hw, 3))
  y = rng.uniform(-1, 1, (2, *lr_hw, 3))
  p = consistency.make_projector(method, lr_hw, out_hw)
  ours = np.asarray(consistency.project(p, jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)))

  a = np.kron(degradation.axis_matrix(method, out_hw[0], lr_hw[0]),
              degradation.axis_matrix(method, out_hw[1], lr_hw[1]))
  flat = lambda v: v.transpose(0, 3, 1, 2).reshape(2, 3, -1)
  xf, yf = flat(x), flat(y)
  expected = xf + np.einsum('ij,bcj->bci', np.linalg.pinv(a), yf - np.einsum('ij,bcj->bci', a, xf))
  np.testing.assert_allclose(flat(ours), expected, atol=2e-5)
  np.testing.assert_allclose(np.einsum('ij,bcj->bci', a, flat(ours)), yf, atol=2e-5)
  again = consistency.project(p, jnp.asarray(ours), jnp.asarray(y, jnp.float32))
  np.testing.assert_allclose(again, ours, atol=2e-5)


def test_bad_methods_and_sizes_are_refused():
  with pytest.raises(ValueError, match='choose one of'):
    consistency.make_projector('bilinear', (4, 4), (8, 8))
  with pytest.raises(ValueError, match='at least the LR'):
    consistency.make_projector('matlab_bicubic', (8, 8), (4, 8))
  assert consistency.make_projector('none', (4, 4), (8, 8)) is None


def _sampler(name, method, **fields):
  s = config.default_sampler_config()
  s.name, s.steps, s.consistency = name, 6, method
  s.update(fields)
  return s


def _diffusion():
  d = config.default_diffusion_config()
  d.num_timesteps, d.linear_start, d.linear_end = 40, 1e-4, 0.3
  return d


@pytest.mark.parametrize('name,lr_hw,out_hw,tile_size', [
    ('dpm_solver++', (4, 4), (12, 12), 256),
    ('ddim', (5, 3), (12, 11), 256),  # Non-square, non-integer.
    ('ddpm', (6, 6), (24, 24), 256),
    ('ddim', (6, 6), (24, 24), 12),  # Tiled: 3 x 3 tiles, projection after blending.
])
def test_samples_degrade_to_their_lr_input(name, lr_hw, out_hw, tile_size):
  model, method = stand_in.StandIn(), 'matlab_bicubic'
  lr = stand_in.uniform((2, *lr_hw, 3), 3) * 0.8
  p = jnp.array([0.3, 0.9])
  sampler = _sampler(name, method, eta=1.0, tile_size=tile_size, tile_overlap=4)
  out = sampling.sample(model, lr, out_hw, p, jax.random.key(0), sampler, _diffusion())
  projector = consistency.make_projector(method, lr_hw, out_hw)
  np.testing.assert_allclose(consistency.downsample(projector, out), lr, atol=2e-5)
  sampler.consistency = 'none'
  free = sampling.sample(model, lr, out_hw, p, jax.random.key(0), sampler, _diffusion())
  assert float(jnp.abs(consistency.downsample(projector, free) - lr).max()) > 1e-2


def test_every_step_x0_is_projected_and_auto_must_be_resolved():
  model, lr_hw, out_hw = stand_in.StandIn(), (4, 4), (12, 16)
  lr, p = stand_in.uniform((1, *lr_hw, 3), 4) * 0.5, jnp.array([0.5])
  sampler = _sampler('dpm_solver++', 'pil_bicubic', trajectory_every=1)
  _, traj = sampling.sample(model, lr, out_hw, p, jax.random.key(1), sampler, _diffusion())
  projector = consistency.make_projector('pil_bicubic', lr_hw, out_hw)
  for x0 in traj.x0:
    np.testing.assert_allclose(consistency.downsample(projector, x0), lr, atol=2e-5)
  sampler.consistency = 'auto'
  with pytest.raises(ValueError, match='resolve_sampler'):
    sampling.sample(model, lr, out_hw, p, jax.random.key(1), sampler, _diffusion())
