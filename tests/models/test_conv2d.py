"""The convolution's CPU Winograd paths against a float64 closed form and XLA's own convolution."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from idm_jax.models import conv2d as conv_lib


def _reference_kernel_grad(x: np.ndarray, dy: np.ndarray) -> np.ndarray:
  """dk[i, j, c, d] = sum over n, h, w of x_padded[n, h + i, w + j, c] * dy[n, h, w, d]."""
  x, dy = x.astype(np.float64), dy.astype(np.float64)
  _, h, w, _ = x.shape
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  return np.stack([np.stack([np.einsum('nhwc,nhwd->cd', xp[:, i:i + h, j:j + w], dy)
                             for j in range(3)]) for i in range(3)])


def _inputs(shape, c_out, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal(shape).astype(np.float32)
  dy = rng.standard_normal((*shape[:3], c_out)).astype(np.float32)
  return x, dy


def _rel_err(a, b):
  return float(np.abs(np.asarray(a, np.float64) - b).max() / np.abs(b).max())


# Square and not, sizes that are and are not multiples of the 4x4 Winograd tile, one pixel.
SHAPES = [((2, 16, 16, 8), 4), ((1, 13, 7, 3), 5), ((3, 9, 22, 16), 8), ((1, 1, 1, 2), 3),
          ((2, 4, 5, 6), 2)]


@pytest.mark.parametrize('shape, c_out', SHAPES)
@pytest.mark.parametrize('grad_fn', [conv_lib.winograd_kernel_grad,
                                     conv_lib.row_product_kernel_grad])
def test_kernel_grad_matches_float64_closed_form(shape, c_out, grad_fn):
  x, dy = _inputs(shape, c_out)
  got = jax.jit(grad_fn)(x, dy)
  assert got.shape == (3, 3, shape[-1], c_out)
  # Winograd F(4, 3) loses a few bits in its transforms; 1e-5 relative is float32 territory.
  assert _rel_err(got, _reference_kernel_grad(x, dy)) < 2e-5


def _reference_conv(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
  """y[n, h, w, d] = sum over i, j, c of x_padded[n, h + i, w + j, c] * kernel[i, j, c, d]."""
  x, kernel = x.astype(np.float64), kernel.astype(np.float64)
  _, h, w, _ = x.shape
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  return sum(np.einsum('nhwc,cd->nhwd', xp[:, i:i + h, j:j + w], kernel[i, j])
             for i in range(3) for j in range(3))


@pytest.mark.parametrize('shape, c_out', SHAPES)
@pytest.mark.parametrize('conv_fn', [conv_lib.winograd_conv3x3, conv_lib.im2col_conv3x3])
def test_conv_matches_float64_closed_form(shape, c_out, conv_fn):
  x, _ = _inputs(shape, c_out)
  kernel = np.random.default_rng(3).standard_normal((3, 3, shape[-1], c_out)).astype(np.float32)
  got = jax.jit(conv_fn)(x, kernel)
  assert got.shape == (*shape[:3], c_out) and got.dtype == jnp.float32
  assert _rel_err(got, _reference_conv(x, kernel)) < 2e-5


# (input shape, output channels, kernel size, stride, padding): a 1x1 product; 3x3 convolutions
# small enough for XLA's own, large enough for Winograd (many tiles: forward, input and weight
# gradients) and with few tiles and many channels (im2col forward and input gradient, row-product
# weight gradient); XLA's plain convolution for strides and other paddings.
CASES = [((4, 20, 18, 12), 10, 1, 1, 0), ((4, 20, 18, 12), 10, 3, 1, 1),
         ((4, 64, 60, 32), 32, 3, 1, 1), ((1, 8, 8, 512), 512, 3, 1, 1),
         ((4, 20, 18, 12), 10, 3, 2, 1), ((4, 20, 18, 12), 10, 3, 1, 0)]


def test_the_cases_take_every_cpu_path():
  """Whatever the thresholds are tuned to, the cases below run each path: forward and input
  gradient (a convolution from c_out back to c_in), and weight gradient."""
  same = [(shape, c_out) for shape, c_out, *geometry in CASES if geometry == [3, 1, 1]]
  convs = {conv_lib.cpu_conv_path(shape, c_out) for shape, c_out in same}
  convs |= {conv_lib.cpu_conv_path((*shape[:3], c_out), shape[-1]) for shape, c_out in same}
  assert convs == conv_lib.CONV_PATHS.keys()
  grads = {conv_lib.cpu_kernel_grad_path(shape, c_out) for shape, c_out in same}
  assert grads == conv_lib.KERNEL_GRAD_PATHS.keys()


@pytest.mark.parametrize('shape, c_out, kernel_size, stride, padding', CASES)
def test_conv2d_value_and_gradients_match_xla(shape, c_out, kernel_size, stride, padding):
  """Every dispatch path is the same function as XLA's convolution, value and gradients."""
  x, _ = _inputs(shape, 1, seed=1)
  kernel = np.random.default_rng(2).standard_normal(
      (kernel_size, kernel_size, shape[-1], c_out)).astype(np.float32)
  kernel /= np.sqrt(kernel_size**2 * shape[-1])

  def xla(x, k):
    return jax.lax.conv_general_dilated(x, k, (stride, stride), ((padding, padding),) * 2,
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                        precision='highest')

  def loss(conv, x, k):
    y = conv(x, k)
    return jnp.sum(y * jnp.cos(y))  # A non-constant cotangent.

  ours = jax.jit(jax.value_and_grad(
      lambda x, k: loss(lambda a, b: conv_lib.conv2d(a, b, stride, padding), x, k), (0, 1)))
  theirs = jax.jit(jax.value_and_grad(lambda x, k: loss(xla, x, k), (0, 1)))
  (value, (dx, dk)), (ref_value, (ref_dx, ref_dk)) = ours(x, kernel), theirs(x, kernel)
  assert abs(float(value) - float(ref_value)) < 1e-4 * abs(float(ref_value)) + 1e-4
  assert _rel_err(dx, np.asarray(ref_dx)) < 1e-5
  assert _rel_err(dk, np.asarray(ref_dk)) < 2e-5


# XLA's path, and Winograd's (which computes in float32 and casts back).
@pytest.mark.parametrize('shape, c_out', [((2, 32, 32, 8), 4), ((4, 64, 64, 32), 32)])
def test_bfloat16_gradient_keeps_dtypes(shape, c_out):
  x, _ = _inputs(shape, 1)
  kernel = jnp.ones((3, 3, shape[-1], c_out), jnp.float32) / (9 * shape[-1])

  def loss(x, k):
    return jnp.sum(conv_lib.conv2d(x.astype(jnp.bfloat16), k, 1, 1).astype(jnp.float32) ** 2)

  dx, dk = jax.jit(jax.grad(loss, (0, 1)))(x, kernel)
  assert dx.dtype == jnp.float32 and dk.dtype == jnp.float32
  ref = jax.jit(jax.grad(lambda x, k: jnp.sum(jax.lax.conv_general_dilated(
      x, k, (1, 1), ((1, 1), (1, 1)), dimension_numbers=('NHWC', 'HWIO', 'NHWC')) ** 2),
                         (0, 1)))(x, kernel)
  # bfloat16 keeps 8 bits of mantissa: agreement to a few parts in a hundred.
  assert _rel_err(dk, np.asarray(ref[1])) < 3e-2
