"""NHWC convolution with PyTorch's `F.conv2d` semantics, with fast 3x3 convolutions on CPU.

On CPU every 3x3, stride-1 convolution large enough to matter runs Winograd's F(4x4, 3x3)
algorithm (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): transforms
of overlapping 6x6 input tiles, 36 matrix products with the transformed filter, a transform back
to 4x4 output tiles: 4x fewer multiplications than the direct convolution, faster than XLA:CPU's
convolution from 64 tiles per product up. With fewer tiles (16x16 and 8x8 maps at batch 1) the
filter transform costs more than it saves, and one matrix product over the nine taps (im2col) is
used. The input gradient is the same convolution with the flipped, transposed filter, so it takes
the same paths. XLA:CPU computes the weight gradient as a convolution whose batch axis is the
input channels, far slower than its forward pass; it is computed here with Winograd's transforms
where there are many tiles, else as three row products (README, 'Benchmarks', has the figures).
`cpu_conv_path` and `cpu_kernel_grad_path` make these choices. Small convolutions keep XLA's own
code everywhere (as fast, and it compiles faster); GPUs and TPUs keep XLA's convolution and
gradients, and so does the CPU with IDM_JAX_CPU_FAST_PATHS=0 (`cpu_fast_paths`).
"""
import contextlib
import functools

import jax
import jax.numpy as jnp
import numpy as np

from idm_jax import cpu_fast_paths

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

# Below this much work (multiply-adds x 2 of the direct convolution) XLA's own convolution and
# gradient are as fast, and they compile in a fraction of the time of the Winograd graph.
_MIN_FLOPS = 2.5e8
# Winograd's 36 products pay off only with enough tiles per product (from 64 tiles at 256-512
# channels on the CPUs the README names), and for the weight gradient with enough relative to the
# input channels; below that im2col (convolution) or three row products (weight gradient) win.
_MIN_TILES = 64
_MIN_TILES_PER_INPUT_CHANNEL = 1 / 4


def _xla_conv(x: jax.Array, kernel: jax.Array, stride: int, padding: int) -> jax.Array:
  return jax.lax.conv_general_dilated(
      x, kernel, window_strides=(stride, stride),
      padding=((padding, padding), (padding, padding)),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def conv2d(x: jax.Array, kernel: jax.Array, stride: int = 1, padding: int = 0) -> jax.Array:
  """Zero-padded NHWC convolution with an HWIO kernel, computed in x's dtype."""
  kernel = kernel.astype(x.dtype)
  if kernel.shape[:2] == (1, 1) and stride == 1 and padding == 0:
    # A 1x1 convolution is a matrix product; as one, its weight gradient is one too.
    return jnp.einsum('nhwc,cd->nhwd', x, kernel[0, 0])
  if (kernel.shape[:2] == (3, 3) and stride == 1 and padding == 1 and cpu_fast_paths.enabled()
      and jax.default_backend() == 'cpu'):
    return _conv3x3(x, kernel, jax.config.jax_default_matmul_precision)
  return _xla_conv(x, kernel, stride, padding)


def _same_conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return jax.lax.platform_dependent(
      x, kernel, cpu=_cpu_conv3x3, default=CONV_PATHS['xla'])


# `precision`: the matmul precision in force where the convolution was called. The gradient is
# traced later, outside any `jax.default_matmul_precision` block, so it sets it again.
@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv3x3(x: jax.Array, kernel: jax.Array, precision: str | None) -> jax.Array:
  del precision  # In force already.
  return _same_conv3x3(x, kernel)


def _conv3x3_fwd(x, kernel, precision):
  return _conv3x3(x, kernel, precision), (x, kernel)


def _conv3x3_bwd(precision, residuals, dy):
  x, kernel = residuals
  with (jax.default_matmul_precision(precision) if precision else contextlib.nullcontext()):
    # dx = dy correlated with the filter turned by 180 degrees, input and output channels
    # swapped.
    dx = _same_conv3x3(dy, jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2))
    dkernel = jax.lax.platform_dependent(x, dy, cpu=_cpu_kernel_grad, default=_xla_kernel_grad)
  return dx, dkernel.astype(kernel.dtype)


_conv3x3.defvjp(_conv3x3_fwd, _conv3x3_bwd)


def _tiles(h: int, w: int) -> tuple[int, int]:
  return -(-h // _OUT_TILE), -(-w // _OUT_TILE)


def _direct_flops(x_shape: tuple[int, ...], c_out: int) -> int:
  n, h, w, c_in = x_shape
  return 18 * n * h * w * c_in * c_out


def _tile_count(x_shape: tuple[int, ...]) -> int:
  th, tw = _tiles(*x_shape[1:3])
  return x_shape[0] * th * tw


def cpu_conv_path(x_shape: tuple[int, ...], c_out: int) -> str:
  """The CPU's path for a 'same' 3x3 convolution of an (N, H, W, C_in) input to c_out channels
  (the input gradient is one too): a key of `CONV_PATHS`."""
  if _direct_flops(x_shape, c_out) < _MIN_FLOPS:
    return 'xla'
  if _tile_count(x_shape) < _MIN_TILES:
    return 'im2col'
  return 'winograd'


def cpu_kernel_grad_path(x_shape: tuple[int, ...], c_out: int) -> str:
  """The CPU's path for the weight gradient of that convolution: a key of `KERNEL_GRAD_PATHS`."""
  if _direct_flops(x_shape, c_out) < _MIN_FLOPS:
    return 'xla'
  if _tile_count(x_shape) < max(_MIN_TILES, _MIN_TILES_PER_INPUT_CHANNEL * x_shape[-1]):
    return 'row_product'
  return 'winograd'


def _cpu_conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
  path = CONV_PATHS[cpu_conv_path(x.shape, kernel.shape[-1])]
  return path(x, kernel).astype(x.dtype)


def im2col_conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """conv(x, kernel) with 'same' zero padding as one matrix product over the nine taps."""
  n, h, w, c_in = x.shape
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  taps = jnp.concatenate([xp[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=-1)
  return jnp.einsum('nhwk,kd->nhwd', taps, kernel.reshape(9 * c_in, -1))


def _xla_kernel_grad(x: jax.Array, dy: jax.Array) -> jax.Array:
  # The transpose alone: a vjp would also trace the forward convolution, for XLA to drop.
  kernel = jax.ShapeDtypeStruct((3, 3, x.shape[-1], dy.shape[-1]), x.dtype)
  return jax.linear_transpose(lambda k: _xla_conv(x, k, 1, 1), kernel)(dy)[0]


def _cpu_kernel_grad(x: jax.Array, dy: jax.Array) -> jax.Array:
  path = KERNEL_GRAD_PATHS[cpu_kernel_grad_path(x.shape, dy.shape[-1])]
  return path(x, dy).astype(x.dtype)


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


def _combine(matrix: np.ndarray, parts: list[jax.Array], axis: int = 0) -> jax.Array:
  """stack([sum_j matrix[i, j] * parts[j] for each row i], axis), skipping zero coefficients.

  One small matrix applied along a new axis as adds and scalings, which XLA fuses into one loop.
  Applying the 2-D transforms as two such 1-D passes, rows then columns, keeps each fusion small;
  XLA:CPU split the 36-output form into 36 passes over the input.
  """
  rows = []
  for coefficients in matrix:
    total = None
    for c, part in zip(coefficients, parts):
      if c == 0:
        continue
      term = part if c == 1 else -part if c == -1 else part * np.float32(c)
      total = term if total is None else total + term
    rows.append(total)
  return jnp.stack(rows, axis)


def _strided(x: jax.Array, start: int, count: int, axis: int) -> jax.Array:
  return jax.lax.slice_in_dim(x, start, start + _OUT_TILE * (count - 1) + 1, _OUT_TILE, axis)


def _input_transform(x: jax.Array) -> jax.Array:
  """(N, H, W, C) -> B^T d B for every 6x6 tile d of x zero-padded by 1: (36, tiles, C).

  Tiles start every 4 pixels; the padding runs on to whole tiles.
  """
  n, h, w, c = x.shape
  th, tw = _tiles(h, w)
  halo = _IN_TILE - _OUT_TILE
  xp = jnp.pad(x, ((0, 0), (1, _OUT_TILE * th + halo - 1 - h),
                   (1, _OUT_TILE * tw + halo - 1 - w), (0, 0)))
  rows = _combine(_B_T, [_strided(xp, i, th, 1) for i in range(_IN_TILE)])  # (6, N, th, W', C)
  v = _combine(_B_T, [_strided(rows, j, tw, 3) for j in range(_IN_TILE)], axis=1)
  return v.reshape(_IN_TILE**2, n * th * tw, c)


def _filter_transform(kernel: jax.Array) -> jax.Array:
  """(3, 3, C_in, C_out) -> G g G^T: (36, C_in, C_out)."""
  rows = _combine(_G, [kernel[a] for a in range(3)])  # (6, 3, C_in, C_out)
  u = _combine(_G, [rows[:, b] for b in range(3)], axis=1)
  return u.reshape(_IN_TILE**2, *kernel.shape[2:])


def winograd_conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """conv(x, kernel) with 'same' zero padding, in float32.

  x: (N, H, W, C_in), kernel: (3, 3, C_in, C_out) -> (N, H, W, C_out).
  """
  x, kernel = x.astype(jnp.float32), kernel.astype(jnp.float32)
  n, h, w, _ = x.shape
  th, tw = _tiles(h, w)
  m = jnp.einsum('kpc,kcd->kpd', _input_transform(x), _filter_transform(kernel))
  m = m.reshape(_IN_TILE, _IN_TILE, n, th, tw, -1)
  # Output tiles A^T m A, again rows then columns; the columns land next to the tile columns.
  rows = _combine(_A_T, [m[a] for a in range(_IN_TILE)])  # (4, 6, N, th, tw, C)
  y = _combine(_A_T, [rows[:, b] for b in range(_IN_TILE)], axis=-2)  # (4, N, th, tw, 4, C)
  y = y.transpose(1, 2, 0, 3, 4, 5).reshape(n, _OUT_TILE * th, _OUT_TILE * tw, -1)
  return y[:, :h, :w]


def winograd_kernel_grad(x: jax.Array, dy: jax.Array) -> jax.Array:
  """d(sum(dy * conv3x3(x, k))) / dk, for 'same' zero padding, in float32.

  x: (N, H, W, C_in), dy: (N, H, W, C_out) -> (3, 3, C_in, C_out).
  """
  x, dy = x.astype(jnp.float32), dy.astype(jnp.float32)
  n, h, w, _ = x.shape
  c_out = dy.shape[-1]
  th, tw = _tiles(h, w)
  # Gradient tiles: the transpose of the output transform, M = A dy_tile A^T.
  dyp = jnp.pad(dy, ((0, 0), (0, _OUT_TILE * th - h), (0, _OUT_TILE * tw - w), (0, 0)))
  dyp = dyp.reshape(n, th, _OUT_TILE, tw, _OUT_TILE, c_out)
  rows = _combine(_A_T.T, [dyp[:, :, p] for p in range(_OUT_TILE)])  # (6, N, th, tw, 4, C)
  m = _combine(_A_T.T, [rows[..., q, :] for q in range(_OUT_TILE)], axis=1)
  m = m.reshape(_IN_TILE**2, n * th * tw, c_out)
  u = jnp.einsum('kpc,kpd->kcd', _input_transform(x), m).reshape(_IN_TILE, _IN_TILE, -1, c_out)
  # Back through the filter transform: dg = G^T dU G.
  rows = _combine(_G.T, [u[a] for a in range(_IN_TILE)])  # (3, 6, C_in, C_out)
  return _combine(_G.T, [rows[:, b] for b in range(_IN_TILE)], axis=1)


# Each path by name: what `cpu_conv_path` / `cpu_kernel_grad_path` pick among.
CONV_PATHS = {
    'xla': lambda x, kernel: _xla_conv(x, kernel, 1, 1),
    'im2col': im2col_conv3x3,
    'winograd': winograd_conv3x3,
}
KERNEL_GRAD_PATHS = {
    'xla': _xla_kernel_grad,
    'row_product': row_product_kernel_grad,
    'winograd': winograd_kernel_grad,
}
