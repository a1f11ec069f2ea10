"""EDSR-baseline encoder: LR image -> features -> resized to the HR grid -> conditioning image."""
import jax
from flax import nnx

from idm_jax.models import pixel_grid
from idm_jax.models.layers import Conv


class EDSRBlock(nnx.Module):
  """conv-ReLU-conv with an identity skip (EDSR, residual scale 1)."""

  def __init__(self, features: int, *, rngs: nnx.Rngs):
    self.conv1 = Conv(features, features, rngs=rngs)
    self.conv2 = Conv(features, features, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return x + self.conv2(jax.nn.relu(self.conv1(x)))


def resize_nearest_legacy(x: jax.Array, out_hw: tuple[int, int]) -> jax.Array:
  """`F.interpolate(x, out_hw)` with PyTorch's legacy 'nearest' rule. (B,h,w,C) -> (B,H,W,C)."""
  rows = pixel_grid.legacy_nearest_indices(x.shape[1], out_hw[0])
  cols = pixel_grid.legacy_nearest_indices(x.shape[2], out_hw[1])
  return pixel_grid.take(pixel_grid.take(x, rows, 1), cols, 2)


class EDSREncoder(nnx.Module):
  """The official `EDSR(no_upsampling=False)`: head, residual body, nearest resize, tail.

  EDSR's mean-shift layers are not applied (their calls are commented out officially).
  """

  def __init__(self, blocks: int, features: int, *, rngs: nnx.Rngs):
    self.head = Conv(3, features, rngs=rngs)
    self.blocks = nnx.List([EDSRBlock(features, rngs=rngs) for _ in range(blocks)])
    self.body_out = Conv(features, features, rngs=rngs)
    self.tail = Conv(features, 3, rngs=rngs)

  def __call__(self, lr: jax.Array, out_hw: tuple[int, int]) -> jax.Array:
    """lr (B,h,w,3) in [-1, 1] -> conditioning image x_con (B,H,W,3)."""
    x = self.head(lr)
    res = x
    for block in self.blocks:
      res = block(res)
    res = self.body_out(res) + x
    return self.tail(resize_nearest_legacy(res, out_hw))
