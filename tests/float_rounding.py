"""Comparing outputs of separately compiled XLA programs: equal up to float32 rounding (and, once
written as 8-bit images, up to a rare one-level flip).

Two programs that compute the same thing (one tile vs untiled, another trajectory layout) may
fuse and order their float32 sums differently, and XLA's kernels differ between CPUs (AVX2 vs
AVX-512), so their outputs agree to rounding, not bit for bit. The bound is a small number of
float32 ulps of the values' magnitude, after the rounding of a few steps of a sampler.
"""
import numpy as np

ULPS = 64


def assert_equal_to_rounding(actual, expected, ulps: int = ULPS) -> None:
  actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
  scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
  np.testing.assert_allclose(actual, expected, rtol=0,
                             atol=ulps * float(np.finfo(np.float32).eps) * scale)


def assert_8bit_equal_to_rounding(actual, expected, max_fraction: float = 0.01) -> None:
  """Two 8-bit images of float outputs that agree to float rounding: a value may sit on a
  rounding boundary and land one level apart, but no more, and only rarely."""
  actual, expected = np.asarray(actual, np.int16), np.asarray(expected, np.int16)
  assert actual.shape == expected.shape, (actual.shape, expected.shape)
  diff = np.abs(actual - expected)
  assert diff.max(initial=0) <= 1, f'8-bit values differ by up to {diff.max()}'
  assert np.mean(diff > 0) <= max_fraction, f'{np.mean(diff > 0):.2%} of the values differ'
