"""Reads a run's event files back with TensorBoard's own reader (no TensorFlow)."""
import os

from tensorboard.backend.event_processing import event_accumulator


def read(directory: os.PathLike) -> event_accumulator.EventAccumulator:
  """Every scalar and image of the event files in `directory` (one run)."""
  accumulator = event_accumulator.EventAccumulator(
      os.fspath(directory), size_guidance={event_accumulator.SCALARS: 0,
                                           event_accumulator.IMAGES: 0})
  accumulator.Reload()
  return accumulator


def scalars(directory: os.PathLike) -> dict[str, list[tuple[int, float]]]:
  """Scalars by tag: [(step, value), ...]."""
  accumulator = read(directory)
  return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)]
          for tag in accumulator.Tags()['scalars']}
