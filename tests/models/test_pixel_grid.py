"""Static index geometry against closed forms and a float64 brute-force nearest search."""
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from idm_jax.models import pixel_grid


@pytest.mark.parametrize('in_size,out_size', [(16, 64), (16, 40), (12, 52), (7, 13), (5, 5),
                                              (3, 36), (9, 10)])
def test_legacy_nearest_is_floor_of_exact_ratio(in_size, out_size):
  expected = [int(Fraction(i * in_size, out_size)) for i in range(out_size)]  # exact floor
  np.testing.assert_array_equal(pixel_grid.legacy_nearest_indices(in_size, out_size), expected)


def test_pixel_centres_closed_form():
  n = 7
  np.testing.assert_allclose(pixel_grid.pixel_centres(n), -1 + (2 * np.arange(n) + 1) / n,
                             atol=1e-7)


@pytest.mark.parametrize('latent', [2, 3, 4, 8, 13])
def test_implicit_query_at_exact_2x(latent):
  q = pixel_grid.implicit_axis_queries(2 * latent, latent, 0)
  np.testing.assert_array_equal(q.index, np.arange(2 * latent) // 2)
  np.testing.assert_allclose(q.rel, np.tile([-0.5, 0.5], latent), atol=1e-5)


@pytest.mark.parametrize('n_out,latent', [(13, 7), (40, 20), (37, 19), (70, 35), (9, 4),
                                          (100, 8), (5, 5)])
def test_implicit_query_matches_brute_force_nearest(n_out, latent):
  q = pixel_grid.implicit_axis_queries(n_out, latent, 0)
  coord = -1 + (2 * np.arange(n_out) + 1) / n_out
  centres = -1 + (2 * np.arange(latent) + 1) / latent
  dist = np.abs(coord[:, None] - centres[None, :])
  nearest = dist.argmin(axis=1)
  sorted_d = np.sort(dist, axis=1)
  clear = sorted_d[:, 1] - sorted_d[:, 0] > 1e-6  # Ties are decided by rounding rules.
  np.testing.assert_array_equal(q.index[clear], nearest[clear])
  np.testing.assert_allclose(q.rel, (coord - centres[q.index]) * latent, atol=1e-5)
  assert np.all(np.abs(q.rel) <= 1.0 + 1e-5)


def test_local_ensemble_offsets_move_the_lookup_by_a_cell():
  # A query in the lower half of its cell moves to the previous cell with shift -1, and keeps
  # its offset measured from the unmoved point (LIIF).
  base = pixel_grid.implicit_axis_queries(8, 4, 0)
  down = pixel_grid.implicit_axis_queries(8, 4, -1)
  up = pixel_grid.implicit_axis_queries(8, 4, 1)
  np.testing.assert_array_equal(down.index, np.clip(np.arange(8) // 2 - (np.arange(8) % 2 == 0), 0, 3))
  np.testing.assert_array_equal(up.index, np.clip(np.arange(8) // 2 + (np.arange(8) % 2 == 1), 0, 3))
  np.testing.assert_allclose(base.rel, np.tile([-0.5, 0.5], 4), atol=1e-5)
  centres = pixel_grid.pixel_centres(4)
  coord = pixel_grid.pixel_centres(8)
  np.testing.assert_allclose(down.rel, (coord - centres[down.index]) * 4, atol=1e-5)


def test_grid_sample_rounds_half_to_even():
  # (c + 1) * size / 2 - 0.5 lands exactly on .5 for these coordinates.
  size = 4
  coords = np.array([(k + 0.5 + 0.5) / (size / 2) - 1 for k in range(size - 1)], np.float32)
  np.testing.assert_array_equal(pixel_grid.grid_sample_nearest_indices(coords, size), [0, 2, 2])


@pytest.mark.parametrize('n_out', [5, 10, 12, 15, 7])
@pytest.mark.parametrize('shift', [-1, 0, 1])
def test_take_is_indexing_and_repeats_at_integer_ratios(n_out, shift):
  x = jnp.asarray(np.random.default_rng(n_out).normal(size=(2, 5, 4, 3)), jnp.float32)
  index = pixel_grid.implicit_axis_queries(n_out, 5, shift).index
  np.testing.assert_array_equal(pixel_grid.take(x, index, 1), np.asarray(x)[:, index])
  grad = jax.grad(lambda x: jnp.sum(pixel_grid.take(x, index, 1) ** 2))
  np.testing.assert_allclose(grad(x), jax.grad(lambda x: jnp.sum(x[:, index] ** 2))(x),
                             rtol=1e-6)
  program = jax.jit(grad).lower(x).as_text()
  is_repeat = n_out % 5 == 0 and np.array_equal(index, np.repeat(np.arange(5), n_out // 5))
  # A repeat needs neither a gather forward nor a scatter-add backward.
  assert ('gather' not in program and 'scatter' not in program) == is_repeat
