"""Which record and which random numbers each batch slot gets: pure functions of the step.

Host h owns records h, h + P, h + 2P, ... (disjoint across hosts, together covering all). Its
slots form one stream, position = step * local_batch + slot, read epoch by epoch, each epoch a
fresh permutation of the shard. Nothing depends on iterator state, so a run resumed at step k
sees exactly the batches an uninterrupted run would have.
"""
import threading

import numpy as np

# Distinct streams of randomness derived from the seed.
_STEP, _EPOCH, _SLOT, _RETRY = range(4)


def shard_indices(num_records: int, process_index: int, process_count: int) -> np.ndarray:
  """Record indices read by one host."""
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index {process_index} not in [0, {process_count}).')
  shard = np.arange(process_index, num_records, process_count)
  if shard.size == 0:
    raise ValueError(f'The dataset has {num_records} records, too few for {process_count} hosts.')
  return shard


def step_rng(seed: int, step: int) -> np.random.Generator:
  """Randomness shared by all hosts at one step (the HR target size)."""
  return np.random.default_rng([seed, _STEP, step])


class HostSampler:
  """Record indices and per-slot randomness of one host."""

  def __init__(self, shard: np.ndarray, seed: int, process_index: int, local_batch: int):
    self.shard = shard
    self._seed = seed
    self._process = process_index
    self._local_batch = local_batch
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
        rng = np.random.default_rng([self._seed, _EPOCH, self._process, epoch])
        perm = rng.permutation(self.shard)
        if len(self._perms) >= 4:
          del self._perms[min(self._perms)]
        self._perms[epoch] = perm
    return perm

  def record(self, step: int, slot: int, attempt: int = 0) -> int:
    """The record for a slot; attempt > 0 draws a replacement for a bad record."""
    if attempt:
      rng = np.random.default_rng([self._seed, _RETRY, self._process, step, slot, attempt])
      return int(self.shard[rng.integers(self.shard.size)])
    position = step * self._local_batch + slot
    epoch, offset = divmod(position, self.shard.size)
    return int(self._permutation(epoch)[offset])

  def slot_rng(self, step: int, slot: int, attempt: int = 0) -> np.random.Generator:
    """Randomness (crop, flips) of one slot."""
    return np.random.default_rng([self._seed, _SLOT, self._process, step, slot, attempt])
