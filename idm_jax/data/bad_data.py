"""Counting skipped images: log the first few, stop the run above a fraction of the data."""
from absl import logging

_LOGGED_PATHS = 5


class BadDataError(RuntimeError):
  """Too much of the data is unreadable or too small."""


class BadDataTracker:
  """Distinct skipped records seen by one host, by reason ('unreadable', 'too_small')."""

  def __init__(self, num_records: int, max_fraction: float, what: str):
    self._num_records = num_records
    self._max_fraction = max_fraction
    self._what = what
    self._skipped = {}  # name -> reason, in the order first seen.

  @property
  def counts(self) -> dict[str, int]:
    """Number of distinct skipped records per reason."""
    out = {}
    for reason in self._skipped.values():
      out[reason] = out.get(reason, 0) + 1
    return out

  @property
  def names(self) -> list[str]:
    """Skipped records, in the order first seen."""
    return list(self._skipped)

  def add(self, skipped: list[tuple[str, str, str]]) -> None:
    """Adds (name, reason, message) triples; raises BadDataError above the allowed fraction."""
    for name, reason, message in skipped:
      if name in self._skipped:
        continue
      self._skipped[name] = reason
      n = len(self._skipped)
      if n <= _LOGGED_PATHS:
        logging.warning('Skipped %s image %d (%s): %s', self._what, n, reason, message)
      elif n & (n - 1) == 0:
        logging.warning('Skipped %d distinct %s images so far %s; first: %s', n, self._what,
                        self.counts, self.names[:_LOGGED_PATHS])
    fraction = len(self._skipped) / self._num_records
    if fraction > self._max_fraction:
      raise BadDataError(
          f'{len(self._skipped)} of {self._num_records} {self._what} images ({fraction:.1%}) were '
          f'skipped {self.counts}, above data.max_bad_fraction={self._max_fraction}. First: '
          f'{self.names[:_LOGGED_PATHS]}. Fix or remove these files, set data.pad_small=True for '
          'small images, or raise data.max_bad_fraction.')
