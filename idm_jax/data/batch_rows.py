"""Which record and which random numbers each slot of a global batch gets: pure functions of
(seed, step, slot).

Slot j of step k has the stream position k * global_batch + j. The stream reads all records
epoch by epoch, each epoch a fresh permutation of them. A host builds only its own rows of the
global batch, but what a row holds does not depend on which host builds it, how many hosts there
are, or what was read before: a run resumed at step k on another topology (a preempted slice
coming back smaller) sees exactly the batches an uninterrupted run would have.
"""
import threading

import numpy as np

# Distinct streams of randomness derived from the seed.
_STEP, _EPOCH, _SLOT, _RETRY = range(4)


def step_rng(seed: int, step: int) -> np.random.Generator:
  """Randomness shared by every slot of one step (the HR target size)."""
  return np.random.default_rng([seed, _STEP, step])


class GlobalSampler:
  """Record indices and per-slot randomness of every slot of every global batch."""

  def __init__(self, num_records: int, seed: int, global_batch: int):
    if num_records < 1:
      raise ValueError('The dataset has no records.')
    self.num_records = num_records
    self._seed = seed
    self._global_batch = global_batch
    self._perms = {}  # A few recent epochs' permutations, shared by the threads of a process.
    self._lock = threading.Lock()

  def __getstate__(self):
    state = {**self.__dict__, '_perms': {}}
    del state['_lock']
    return state

  def __setstate__(self, state):
    self.__dict__.update(state)
    self._lock = threading.Lock()

  def _permutation(self, epoch: int) -> np.ndarray:
    with self._lock:
      perm = self._perms.get(epoch)
      if perm is None:
        perm = np.random.default_rng([self._seed, _EPOCH, epoch]).permutation(self.num_records)
        if len(self._perms) >= 4:
          del self._perms[min(self._perms)]
        self._perms[epoch] = perm
    return perm

  def record(self, step: int, slot: int, attempt: int = 0) -> int:
    """The record of a global slot; attempt > 0 draws a replacement for a bad record."""
    if attempt:
      rng = np.random.default_rng([self._seed, _RETRY, step, slot, attempt])
      return int(rng.integers(self.num_records))
    epoch, offset = divmod(step * self._global_batch + slot, self.num_records)
    return int(self._permutation(epoch)[offset])

  def slot_rng(self, step: int, slot: int, attempt: int = 0) -> np.random.Generator:
    """Randomness (crop, flips) of one global slot."""
    return np.random.default_rng([self._seed, _SLOT, step, slot, attempt])
