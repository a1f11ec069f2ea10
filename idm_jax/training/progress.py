"""Where a run's time goes: the pace and the time left (logged), the share of wall time spent in
named sections (waiting for data, checkpointing, validation; written as time_share/NAME); and a
profiler window.

The host enqueues steps ahead of the device, so the pace between two reports is the device's;
a section's share is host time inside it.
"""
import collections
import contextlib
import time

import jax
from absl import logging

from idm_jax import paths
from idm_jax.training import summaries


class Progress:
  """Call with the number of finished steps after each one; reports every `every_secs`."""

  def __init__(self, num_steps: int, writer: summaries.Writer, every_secs: float,
               first_step: int):
    self._num_steps = num_steps
    self._writer = writer
    self._every_secs = every_secs
    self._last_time = time.monotonic()
    self._last_step = first_step
    self._sections = collections.defaultdict(float)

  @contextlib.contextmanager
  def timed(self, name: str):
    start = time.monotonic()
    try:
      yield
    finally:
      self._sections[name] += time.monotonic() - start

  def __call__(self, step: int) -> None:
    now = time.monotonic()
    elapsed = now - self._last_time
    if elapsed < self._every_secs and step < self._num_steps:
      return
    steps_per_sec = (step - self._last_step) / max(elapsed, 1e-9)
    self._writer.write_scalars(step, {f'time_share/{name}': seconds / max(elapsed, 1e-9)
                                      for name, seconds in self._sections.items()})
    left = (self._num_steps - step) / steps_per_sec if steps_per_sec > 0 else float('inf')
    logging.info('Step %d / %d: %.3g steps/s, about %.0f min left.', step, self._num_steps,
                 steps_per_sec, left / 60)
    self._last_time, self._last_step = now, step
    self._sections.clear()


class ProfileWindow:
  """Traces steps [first, first + count) with the JAX profiler into `logdir` (TensorBoard's
  profile plugin reads it from there)."""

  def __init__(self, logdir: paths.PathLike, first: int, count: int):
    self._logdir = str(paths.resolve(logdir))
    self._first, self._last = first, first + count
    self._active = False

  def __call__(self, step: int) -> None:
    """Call with the number of finished steps."""
    if step == self._first and not self._active:
      try:
        jax.profiler.start_trace(self._logdir)
      except Exception as e:  # pylint: disable=broad-exception-caught
        # JAX's own file layer may not serve this storage: a trace is not worth a run.
        logging.warning('No profiler trace: cannot write to %s (%s).', self._logdir, e)
        return
      self._active = True
    elif step >= self._last and self._active:
      self.stop()

  def stop(self) -> None:
    if self._active:
      jax.profiler.stop_trace()
      self._active = False
