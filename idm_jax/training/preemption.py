"""Stop requests: SIGTERM/SIGINT become a flag the training loop polls, agreed across hosts.

The loop then saves a checkpoint and returns; a second SIGINT interrupts at once.
"""
import signal
import threading
import types

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils


class StopRequest:
  """Context manager that installs the handlers (main thread only) and restores them on exit."""

  def __init__(self, sync_steps: int = 10):
    self.signal_name: str | None = None
    self._sync_steps = sync_steps
    self._previous: dict[int, object] = {}

  def _handle(self, signum: int, frame: types.FrameType | None) -> None:
    del frame
    name = signal.Signals(signum).name
    if signum == signal.SIGINT and self.signal_name is not None:
      raise KeyboardInterrupt
    self.signal_name = name
    logging.warning('%s received: saving a checkpoint after this step, then stopping.', name)

  def __enter__(self) -> 'StopRequest':
    if threading.current_thread() is threading.main_thread():
      for signum in (signal.SIGTERM, signal.SIGINT):
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous.clear()

  @property
  def requested(self) -> bool:
    return self.signal_name is not None

  def should_stop(self, step: int, manager: ocp.CheckpointManager) -> bool:
    """Whether every process should stop after `step`; all processes get the same answer."""
    if jax.process_count() == 1:
      return self.requested
    # JAX's preemption service (TPU maintenance events) agrees on a step by itself.
    if manager.reached_preemption(step):
      return True
    if step % self._sync_steps:
      return False
    flags = multihost_utils.process_allgather(np.asarray(self.requested))
    return bool(np.any(flags))
