"""Tile layouts, blending windows, and tiled against untiled sampling on the stand-in model."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from idm_jax.config import diffusion as config
from idm_jax.diffusion import sampling
from idm_jax.diffusion import tiling
from tests import float_rounding
from tests.diffusion import stand_in


@pytest.mark.parametrize('lr_hw,out_hw,tile,overlap,multiple', [
    ((16, 16), (128, 128), 48, 8, 1),
    ((16, 12), (100, 75), 60, 10, 1),  # Scale 6.25: tiles are multiples of 25 HR = 4 LR pixels.
    ((10, 20), (80, 160), 40, 8, 16),
    ((8, 8), (64, 64), 256, 32, 16),  # One tile.
])
def test_layout_is_aligned_and_covers_the_output(lr_hw, out_hw, tile, overlap, multiple):
  layout = tiling.plan_tiles(lr_hw, out_hw, tile, overlap, multiple)
  covered = np.zeros(out_hw, bool)
  for axis in range(2):
    h, big = lr_hw[axis], out_hw[axis]
    th, lth = layout.tile_hw[axis], layout.lr_tile_hw[axis]
    assert th * h == lth * big  # The LR crop's footprint is exactly the tile.
    assert th == big or (th <= tile and th % math.lcm(big // math.gcd(h, big), multiple) == 0)
    starts = sorted({s[axis] for s in layout.hr_starts})
    lr_starts = sorted({s[axis] for s in layout.lr_starts})
    assert [s * h for s in starts] == [s * big for s in lr_starts]
    assert starts[0] == 0 and starts[-1] + th == big
    assert all(a + th - b >= overlap for a, b in zip(starts, starts[1:]))
  for y, x in layout.hr_starts:
    covered[y:y + layout.tile_hw[0], x:x + layout.tile_hw[1]] = True
  assert covered.all()


def test_windows_ramp_on_interior_edges_only():
  layout = tiling.plan_tiles((16, 16), (128, 128), 48, 8)
  wy, wx = tiling.windows(layout)
  assert wy.min() > 0 and wx.min() > 0 and wy.max() == 1
  first, last = 0, layout.num_tiles - 1
  assert wy[first, 0] == 1 and wy[first, -1] < 0.05 and wy[last, 0] < 0.05 and wy[last, -1] == 1
  total = np.zeros(layout.out_hw)
  (th, tw) = layout.tile_hw
  for (y, x), a, b in zip(layout.hr_starts, wy, wx):
    total[y:y + th, x:x + tw] += np.outer(a, b)
  assert total.min() > 0.5  # Every pixel has weight to normalise by.
  np.testing.assert_allclose(total[:8, :8], 1.0)  # A corner only the first tile reaches.


def test_too_small_tiles_raise():
  with pytest.raises(ValueError, match='overlap'):
    tiling.plan_tiles((16, 16), (128, 128), 16, 12)


@pytest.fixture(scope='module')
def model():
  return stand_in.StandIn()


def _run(model, tile_size, tiled, cache_condition=False):
  d = config.default_diffusion_config()
  d.num_timesteps = 100
  s = config.default_sampler_config()
  s.name, s.steps, s.tile_size, s.tile_overlap = 'ddim', 10, tile_size, 8
  s.consistency = 'none'
  s.tile_cache_condition = cache_condition
  lr = stand_in.uniform((2, 12, 12, 3), 1)
  return sampling.sample(model, lr, (48, 48), jnp.array([0.5, 1.0]), jax.random.key(0), s, d,
                         tiled=tiled)


def test_one_tile_equals_untiled(model):
  float_rounding.assert_equal_to_rounding(_run(model, 48, True), _run(model, 48, False))


def test_several_tiles_have_bounded_seams(model):
  untiled = _run(model, 24, False)
  tiled = _run(model, 24, None)  # 48 > 24: picked automatically, 3 x 3 tiles of 24.
  err = np.abs(np.asarray(tiled - untiled))
  assert 0 < err.max() < 0.01 and err.mean() < 2e-4
  # Even at its largest, the error is far below the image's own pixel-to-pixel variation.
  assert err.max() < 0.05 * float(jnp.abs(jnp.diff(untiled, axis=2)).mean())
  # Conditioning each tile once gives what recomputing it at every step gives.
  np.testing.assert_allclose(_run(model, 24, None, cache_condition=True), tiled, atol=1e-6)
