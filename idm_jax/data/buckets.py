"""HR target sizes: a bounded bucket set, the per-batch draw, and the network's scale input p.

The official trainer draws p ~ U[0, 1] per batch and resizes the HR target to
round(lr + (max_hr - lr) * p). A jitted step compiles once per shape, so we snap that side to the
nearest bucket and recompute p from the side actually used: p = (hr - lr) / (max_hr - lr).
"""
import ml_collections
import numpy as np

from idm_jax.scale import scale_to_p


def hr_sizes(config: ml_collections.ConfigDict) -> list[int]:
  """Sorted HR target sides; a full run compiles the train step at most once per side.

  The multiples of `bucket_multiple` in [min_hr_size, max_hr_size], plus both ends.
  """
  lo, hi, m = config.min_hr_size, config.max_hr_size, config.bucket_multiple
  return sorted({lo, hi, *range(-(-lo // m) * m, hi + 1, m)})


def scale_input(hr_size: int, lr_size: int, max_hr_size: int) -> float:
  """The network's p for an HR target side: 0 at scale 1, 1 at `max_hr_size`."""
  return float(scale_to_p(hr_size / lr_size, max_hr_size / lr_size))


def draw_hr_size(rng: np.random.Generator, sizes: list[int], lr_size: int,
                 max_hr_size: int) -> int:
  """One HR side: p uniform over the range of `sizes`, snapped to the nearest bucket."""
  p_lo = scale_input(sizes[0], lr_size, max_hr_size)
  side = lr_size + (max_hr_size - lr_size) * rng.uniform(p_lo, 1.0)
  return sizes[int(np.argmin(np.abs(np.asarray(sizes) - side)))]
