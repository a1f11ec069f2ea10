"""Fixtures for the data tests: folders of small PNGs and folder configs."""
import os

import pytest
from PIL import Image

from idm_jax.config import data as config_lib


@pytest.fixture
def write_folder(tmp_path):
  """write_folder(name, images, suffix='') -> folder holding images[i] as '{i:04d}{suffix}.png'."""

  def write(name, images, suffix=''):
    folder = tmp_path / name
    folder.mkdir()
    for i, image in enumerate(images):
      Image.fromarray(image).save(folder / f'{i:04d}{suffix}.png')
    return os.fspath(folder)

  return write


@pytest.fixture
def folder_config():
  """folder_config(path, **fields): a small in-process folder config."""

  def make(path, **fields):
    cfg = config_lib.default_data_config()
    cfg.update(source='folder', path=path, num_workers=0, num_threads=0, lr_size=8,
               min_hr_size=8, max_hr_size=32, bucket_multiple=8)
    cfg.update(fields)
    return cfg

  return make
