"""The network's scale input p, as the official trainer feeds it."""
import numpy as np


def scale_to_p(scale, max_scale: float):
  """p = (scale - 1) / (max_scale - 1): 0 at x1, 1 at the top of the training range.

  The official trainer draws p in [0, 1] and sets the HR side to lr + (max_hr - lr) * p, so p
  is this affine function of the scale; scales beyond the range give p > 1 (extrapolation).
  """
  if max_scale <= 1:
    raise ValueError(f'model.max_scale={max_scale} must exceed 1 (the largest training scale).')
  scale = np.asarray(scale, np.float32)
  if np.any(scale < 1):
    raise ValueError(f'scale {scale} is below 1: IDM only upsamples; pass a scale >= 1.')
  return (scale - 1) / np.float32(max_scale - 1)


def output_scale(lr_hw: tuple[int, int], out_hw: tuple[int, int]) -> float:
  """One scale for a (possibly anisotropic) resize: the geometric mean of the two ratios."""
  return float(np.sqrt(out_hw[0] / lr_hw[0] * out_hw[1] / lr_hw[1]))
