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

from idm_jax import paths


class _ObjectStoreFile:
  """An event file in an object store. Objects cannot be appended to, so each flush writes
  the whole file again through epath (as tensorboardX's own GCS writer does)."""

  def __init__(self, path: str):
    self._path = epath.Path(path)
    self._buffer = io.BytesIO()

  def write(self, data: bytes) -> None:
    self._buffer.write(data)

  def flush(self) -> None:
    self._path.write_bytes(self._buffer.getvalue())

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
    if self._files:
      for tag, value in scalars.items():
        self._files.add_summary(tbx_summary.scalar(tag, float(value)), step)

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

  def flush(self) -> None:
    if self._files:
      self._files.flush()

  def close(self) -> None:
    if self._files:
      self._files.close()
