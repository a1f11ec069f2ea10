"""NHWC convolution with PyTorch's `F.conv2d` semantics and a fast weight gradient on CPU.

XLA:CPU computes the weight gradient of a 3x3 convolution as a convolution whose batch axis is
the input channels. At 128x128 that runs at 6-7 GFLOP/s, ten times slower than the forward pass,
and it was most of a training step. On CPU the weight gradient of a 3x3, stride-1 convolution is
therefore computed with matrix products: at high resolution with Winograd's F(4x4, 3x3) algorithm
(Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016: transforms of 6x6 input
tiles and 4x4 gradient tiles, 36 products, a transform back to 3x3), at low resolution as three
row products. GPUs and TPUs keep XLA's own gradient; the forward convolution and the input
gradient are XLA's on every platform, since they are fast everywhere.
"""
import jax
import jax.numpy as jnp
import numpy as np

# F(4x4, 3x3) with the interpolation points 0, +-1, +-2 and infinity: y = A^T [(G g G^T) *
# (B^T d B)] A for a 6x6 input tile d, a 3x3 filter g and a 4x4 output tile y.
_B_T = np.array([[4, 0, -5, 0, 1, 0],
                 [0, -4, -4, 1, 1, 0],
                 [0, 4, -4, -1, 1, 0],
                 [0, -2, -1, 2, 1, 0],
                 [0, 2, -1, -2, 1, 0],
                 [0, 4, 0, -5, 0, 1]], np.float64)
_G = np.array([[1 / 4, 0, 0],
               [-1 / 6, -1 / 6, -1 / 6],
               [-1 / 6, 1 / 6, -1 / 6],
               [1 / 24, 1 / 12, 1 / 6],
               [1 / 24, -1 / 12, 1 / 6],
               [0, 0, 1]], np.float64)
_A_T = np.array([[1, 1, 1, 1, 1, 0],
                 [0, 1, -1, 2, -2, 0],
                 [0, 1, 1, 4, 4, 0],
                 [0, 1, -1, 8, -8, 1]], np.float64)
_OUT_TILE, _IN_TILE = _A_T.shape

# Below this much work (multiply-adds x 2 of the direct gradient) XLA's own gradient is as fast,
# and it compiles in a fraction of the time of the Winograd graph.
_MIN_FLOPS = 2.5e8
# Winograd's 36 products pay off only with enough tiles per product, relative to the channels
# (measured here: from 64 tiles at 256 channels); below that the three row products win.
_MIN_TILES = 64
_MIN_TILES_PER_INPUT_CHANNEL = 1 / 4


def _xla_conv(x: jax.Array, kernel: jax.Array, stride: int, padding: int,
              groups: int) -> jax.Array:
  return jax.lax.conv_general_dilated(
      x, kernel, window_strides=(stride, stride),
      padding=((padding, padding), (padding, padding)),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'), feature_group_count=groups)


def conv2d(x: jax.Array, kernel: jax.Array, stride: int = 1, padding: int = 0,
           groups: int = 1) -> jax.Array:
  """Zero-padded NHWC convolution with an HWIO kernel, computed in x's dtype."""
  kernel = kernel.astype(x.dtype)
  if kernel.shape[:2] == (1, 1) and stride == 1 and padding == 0 and groups == 1:
    # A 1x1 convolution is a matrix product; as one, its weight gradient is one too.
    return jnp.einsum('nhwc,cd->nhwd', x, kernel[0, 0])
  if kernel.shape[:2] == (3, 3) and stride == 1 and padding == 1 and groups == 1:
    return _conv3x3(x, kernel)
  return _xla_conv(x, kernel, stride, padding, groups)


@jax.custom_vjp
def _conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return _xla_conv(x, kernel, 1, 1, 1)


def _conv3x3_fwd(x, kernel):
  return _conv3x3(x, kernel), (x, kernel)


def _conv3x3_bwd(residuals, dy):
  x, kernel = residuals
  _, input_vjp = jax.vjp(lambda x: _xla_conv(x, kernel, 1, 1, 1), x)
  (dx,) = input_vjp(dy)
  dkernel = jax.lax.platform_dependent(x, dy, cpu=_cpu_kernel_grad, default=_xla_kernel_grad)
  return dx, dkernel.astype(kernel.dtype)


_conv3x3.defvjp(_conv3x3_fwd, _conv3x3_bwd)


def _xla_kernel_grad(x: jax.Array, dy: jax.Array) -> jax.Array:
  kernel = jnp.zeros((3, 3, x.shape[-1], dy.shape[-1]), x.dtype)
  _, kernel_vjp = jax.vjp(lambda k: _xla_conv(x, k, 1, 1, 1), kernel)
  return kernel_vjp(dy)[0]


def _cpu_kernel_grad(x: jax.Array, dy: jax.Array) -> jax.Array:
  n, h, w, c_in = x.shape
  if 18 * n * h * w * c_in * dy.shape[-1] < _MIN_FLOPS:
    return _xla_kernel_grad(x, dy)
  tiles = n * -(-h // _OUT_TILE) * -(-w // _OUT_TILE)
  if tiles >= max(_MIN_TILES, _MIN_TILES_PER_INPUT_CHANNEL * c_in):
    return winograd_kernel_grad(x, dy).astype(x.dtype)
  return row_product_kernel_grad(x, dy)


def row_product_kernel_grad(x: jax.Array, dy: jax.Array) -> jax.Array:
  """The 3x3 kernel gradient as three matrix products, one per kernel row.

  Each row's three horizontal taps are gathered side by side (N*H*W, 3*C_in) and contracted
  with dy over all pixels: no im2col of all nine taps, and products large enough for the CPU.
  """
  n, h, w, c_in = x.shape
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  taps = jnp.concatenate([xp[:, :, dx:dx + w] for dx in range(3)], axis=-1)
  return jnp.stack([
      jnp.einsum('nhwd,nhwk->kd', dy, taps[:, row:row + h]).reshape(3, c_in, dy.shape[-1])
      for row in range(3)])


def _combine(matrix: np.ndarray, parts: list[jax.Array]) -> list[jax.Array]:
  """[sum_j matrix[i, j] * parts[j] for each row i], skipping zeros: fused elementwise code."""
  rows = []
  for coefficients in matrix:
    total = None
    for c, part in zip(coefficients, parts):
      if c == 0:
        continue
      term = part if c == 1 else -part if c == -1 else part * np.float32(c)
      total = term if total is None else total + term
    rows.append(total)
  return rows


def _strided(x: jax.Array, start: int, count: int, axis: int) -> jax.Array:
  return jax.lax.slice_in_dim(x, start, start + _OUT_TILE * (count - 1) + 1, _OUT_TILE, axis)


def winograd_kernel_grad(x: jax.Array, dy: jax.Array) -> jax.Array:
  """d(sum(dy * conv3x3(x, k))) / dk, for 'same' zero padding, in float32.

  x: (N, H, W, C_in), dy: (N, H, W, C_out) -> (3, 3, C_in, C_out).
  """
  x, dy = x.astype(jnp.float32), dy.astype(jnp.float32)
  n, h, w, c_in = x.shape
  c_out = dy.shape[-1]
  th, tw = -(-h // _OUT_TILE), -(-w // _OUT_TILE)
  halo = _IN_TILE - _OUT_TILE
  # Input tiles: 6x6 windows every 4 pixels of x padded by 1 (the conv's padding) and up to
  # whole tiles; V[a, b] = (B^T d B)[a, b] for every tile at once.
  xp = jnp.pad(x, ((0, 0), (1, _OUT_TILE * th + halo - 1 - h),
                   (1, _OUT_TILE * tw + halo - 1 - w), (0, 0)))
  rows = _combine(_B_T, [_strided(xp, i, th, 1) for i in range(_IN_TILE)])
  v = [vab for row in rows
       for vab in _combine(_B_T, [_strided(row, j, tw, 2) for j in range(_IN_TILE)])]
  # Gradient tiles: the transpose of the output transform, M = A dy_tile A^T.
  dyp = jnp.pad(dy, ((0, 0), (0, _OUT_TILE * th - h), (0, _OUT_TILE * tw - w), (0, 0)))
  dyp = dyp.reshape(n, th, _OUT_TILE, tw, _OUT_TILE, c_out)
  rows = _combine(_A_T.T, [dyp[:, :, p] for p in range(_OUT_TILE)])
  m = [mab for row in rows
       for mab in _combine(_A_T.T, [row[:, :, :, q] for q in range(_OUT_TILE)])]
  tiles = n * th * tw
  v = jnp.stack(v).reshape(_IN_TILE**2, tiles, c_in)
  m = jnp.stack(m).reshape(_IN_TILE**2, tiles, c_out)
  u = jnp.einsum('kpc,kpd->kcd', v, m).reshape(_IN_TILE, _IN_TILE, c_in, c_out)
  # Back through the filter transform: dg = G^T dU G.
  rows = _combine(_G.T, [u[a] for a in range(_IN_TILE)])
  return jnp.stack([jnp.stack(_combine(_G.T, [row[b] for b in range(_IN_TILE)]))
                    for row in rows])
