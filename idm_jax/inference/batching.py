"""Many sampling requests as few network calls: one batch size per (LR size, output size).

A call's batch size is fixed for a group, so each group compiles one sampling program; its last
call is padded by repeating its last request, whose extra outputs are dropped. Every request
carries its own key, so its image does not depend on the call it lands in.
"""
from typing import Iterator, NamedTuple, Sequence

import jax
import numpy as np


class Request(NamedTuple):
  """One image to sample."""
  lr: np.ndarray  # (h, w, 3) float32 in [-1, 1].
  out_hw: tuple[int, int]
  p: float  # The network's scale input.
  key: jax.Array  # A typed key () of its own.


class Call(NamedTuple):
  """One network call's inputs: host arrays, to be laid out on the devices."""
  members: list[int]  # The requests it answers, in row order; padding rows follow.
  lr: np.ndarray  # (B, h, w, 3).
  out_hw: tuple[int, int]
  p: np.ndarray  # (B,) float32.
  keys: np.ndarray  # (B, ...) uint32: the raw words of the requests' keys.


def calls(requests: Sequence[Request], max_batch: int, multiple: int = 1) -> Iterator[Call]:
  """The calls answering `requests`: grouped by (LR size, output size), in order of first
  appearance; a group's calls have B rows each, B a multiple of `multiple` (the devices the
  batch is split over), as few calls as B <= max(max_batch, multiple) allows, and B as small as
  that number of calls allows (5 requests with room for 4: two calls of 3, not 4 + 4)."""
  if max_batch < 1:
    raise ValueError(f'max_batch = {max_batch}: pass at least 1.')
  groups: dict[tuple, list[int]] = {}
  for i, request in enumerate(requests):
    groups.setdefault((request.lr.shape, tuple(request.out_hw)), []).append(i)
  for (_, out_hw), members in groups.items():
    largest = max(1, max_batch // multiple) * multiple
    num_calls = -(-len(members) // largest)
    batch = -(-len(members) // (num_calls * multiple)) * multiple
    for start in range(0, len(members), batch):
      part = members[start:start + batch]
      rows = [requests[i] for i in part + [part[-1]] * (batch - len(part))]
      yield Call(members=part, lr=np.stack([r.lr for r in rows]).astype(np.float32),
                 out_hw=out_hw, p=np.array([r.p for r in rows], np.float32),
                 keys=np.asarray(jax.random.key_data(jax.numpy.stack([r.key for r in rows]))))
