"""TensorBoard summaries (scalars, images, hyper-parameters) in the workdir, local or in a bucket.

Written by tensorboardX, which needs no TensorFlow (clu's writers import it, and it is 1.3 GB
that accelerator images usually lack). Every process logs its scalars; only the writer made with
`files=True` (process 0) writes event files.
"""
import io
from typing import Any

import numpy as np
from absl import logging
from etils import epath
from tensorboardX import record_writer
from tensorboardX import summary as tbx_summary
from tensorboardX import writer as tbx_writer
from tensorboardX.proto import summary_pb2

from idm_jax import paths

_PART_BYTES = 8 << 20  # An events object this large is closed; the next records start another.

class _ObjectStoreFile:
  """An event file in an object store. Objects cannot be appended to, so each flush writes the
  object again through epath (as tensorboardX's own GCS writer does); past _PART_BYTES the next
  records go to a new object (TensorBoard reads every events file of a run). A failed upload is
  logged and tried again at the next flush: summaries never stop training (tensorboardX's writer
  thread would die on an exception, and the training loop then block on its full queue)."""

  def __init__(self, path: str):
    self._path = epath.Path(path)
    self._part = 0
    self._buffer = io.BytesIO()

  def write(self, data: bytes) -> None:
    self._buffer.write(data)

  def flush(self) -> None:
    try:
      self._path.write_bytes(self._buffer.getvalue())
    except Exception as e:  # pylint: disable=broad-exception-caught
      logging.warning('Could not write %s (%s); trying again at the next flush.', self._path, e)
      return
    if self._buffer.tell() > _PART_BYTES:
      self._part += 1
      self._path = self._path.with_name(f'{self._path.name.split(".part")[0]}.part{self._part}')
      self._buffer = io.BytesIO()

  def close(self) -> None:
    self.flush()


class _ObjectStoreFiles:
  """tensorboardX's writer factory interface, for every URI scheme epath serves."""

  def open(self, path: str) -> _ObjectStoreFile:
    return _ObjectStoreFile(path)

  def directory_check(self, path: str) -> None:
    epath.Path(path).mkdir(parents=True, exist_ok=True)


for _scheme in ('gs', 's3', 'az'):
  record_writer.register_writer_factory(_scheme, _ObjectStoreFiles())


class Writer:
  """Scalars to the log (every process) and, with `files`, to event files in `logdir`."""

  def __init__(self, logdir: paths.PathLike, *, files: bool):
    self._files = None
    if files:
      self._files = tbx_writer.FileWriter(str(paths.resolve(logdir)), flush_secs=30)

  def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
    logging.info('[%d] %s', step, ', '.join(f'{k}={v:.6g}' for k, v in sorted(scalars.items())))
    if self._files and scalars:
      values = [v for tag, value in scalars.items()
                for v in tbx_summary.scalar(tag, float(value)).value]
      self._files.add_summary(summary_pb2.Summary(value=values), step)  # One event per step.

  def write_images(self, step: int, images: dict[str, np.ndarray]) -> None:
    """`images`: tag -> uint8 (H, W, 3)."""
    if self._files:
      for tag, image in images.items():
        self._files.add_summary(tbx_summary.image(tag, image, dataformats='HWC'), step)

  def write_hparams(self, hparams: dict[str, Any]) -> None:
    """Flat hyper-parameters (bool, int, float or str values) for TensorBoard's HParams tab."""
    logging.info('Hyper-parameters: %s', hparams)
    if self._files:
      for proto in tbx_summary.hparams(hparams, {}):
        self._files.add_summary(proto)

  def close(self) -> None:
    if self._files:
      self._files.close()
