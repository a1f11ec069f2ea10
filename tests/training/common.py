"""The micro experiment of the training tests (micro_config.py) and a pipeline whose batches a
test controls."""
import pathlib
import time

import numpy as np

from idm_jax.data import pipeline
from tests.training import micro_config as micro_config_lib

micro_config = micro_config_lib.micro_config  # The tests' name for it.


def controlled_pipeline(*, nan_steps: tuple[int, ...] = (), block_at: int | None = None,
                        delay: float = 0.0, started_marker: pathlib.Path | None = None):
  """A `TrainPipeline` subclass: NaN HR at `nan_steps`; the batch of `block_at` never comes."""

  class ControlledPipeline(pipeline.TrainPipeline):

    def iterate(self, start_step: int = 0):
      for step, batch in super().iterate(start_step):
        if started_marker is not None:
          started_marker.touch()
        if step == block_at:
          time.sleep(3600)  # Until the test kills the process.
        time.sleep(delay)
        if step in nan_steps:
          batch['hr'] = np.full_like(batch['hr'], np.nan)
        yield step, batch

  return ControlledPipeline
