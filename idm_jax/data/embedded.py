"""The embedded dataset: colour photographs shipped inside scikit-image, with a fixed split.

Every image here loads offline from the scikit-image wheel (others in `skimage.data` need pooch
and a download). The split is by scene, so the stereo pair stays on one side.
"""
import numpy as np
from skimage import data as skdata

from idm_jax.data import image_io

TRAIN = ('astronaut', 'chelsea', 'hubble_deep_field', 'immunohistochemistry', 'retina',
         'motorcycle_left', 'motorcycle_right')
VALIDATION = ('coffee', 'rocket')


def load(name: str) -> np.ndarray:
  """One embedded photograph as uint8 (H, W, 3)."""
  if name == 'motorcycle_left':
    return image_io.to_rgb_uint8(skdata.stereo_motorcycle()[0])
  if name == 'motorcycle_right':
    return image_io.to_rgb_uint8(skdata.stereo_motorcycle()[1])
  if name not in TRAIN + VALIDATION:
    raise ValueError(f'{name!r} is not an embedded image; choose from {TRAIN + VALIDATION}.')
  return image_io.to_rgb_uint8(getattr(skdata, name)())


def names(split: str) -> tuple[str, ...]:
  """Image names of 'train' or 'validation'."""
  if split == 'train':
    return TRAIN
  if split == 'validation':
    return VALIDATION
  raise ValueError(f"The embedded dataset has splits 'train' and 'validation', not {split!r}.")
