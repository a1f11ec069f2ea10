"""Random-access image sources: the embedded photos, folders of images, TFDS datasets.

A source has `len(source)`, `source[i] -> Record` (raising `UnreadableImageError` for a bad
image), `source.name(i)` (full, for logs), `source.key(i)` (short, file-name safe) and
`source.lr_scale` (scale of its official LR images, 0 without). Sources are picklable, so grain
worker processes can read them.
"""
import dataclasses
import difflib
import re

import ml_collections
import numpy as np

from idm_jax import paths
from idm_jax.data import embedded
from idm_jax.data import image_io

# TFDS datasets whose image features are known: (HR image key, official LR key or '').
_KNOWN_TFDS_KEYS = {'div2k': ('hr', 'lr'), 'celeb_a_hq': ('image', '')}


@dataclasses.dataclass(frozen=True)
class Record:
  """One image: `hr` uint8 (H, W, 3); `lr` the official uint8 (H / s, W / s, 3) LR image or None."""
  hr: np.ndarray
  lr: np.ndarray | None
  name: str


class EmbeddedSource:
  """The scikit-image photographs of one split, decoded once per process."""

  def __init__(self, split: str):
    self._names = embedded.names(split)
    self._cache = {}
    self.lr_scale = 0

  def __len__(self) -> int:
    return len(self._names)

  def name(self, i: int) -> str:
    return f'skimage.data.{self._names[i]}'

  def key(self, i: int) -> str:
    return self._names[i]

  def __getitem__(self, i: int) -> Record:
    if i not in self._cache:
      self._cache[i] = embedded.load(self._names[i])
    return Record(self._cache[i], None, self.name(i))

  def __getstate__(self):
    return {**self.__dict__, '_cache': {}}


class FolderSource:
  """Image files, optionally each with an official LR file at integer scale `lr_scale`.

  Paths are strings (local or URIs such as gs://bucket/dir/x.png), so the source pickles.
  """

  def __init__(self, root: str, hr_paths: list[str], lr_paths: list[str] | None = None,
               lr_scale: int = 0):
    self._root = root
    self._hr_paths = hr_paths
    self._lr_paths = lr_paths
    self.lr_scale = lr_scale if lr_paths else 0

  def __len__(self) -> int:
    return len(self._hr_paths)

  def name(self, i: int) -> str:
    return self._hr_paths[i]

  def key(self, i: int) -> str:
    rel = paths.resolve(self._hr_paths[i]).relative_to(paths.resolve(self._root))
    return str(rel.with_suffix('')).replace('/', '_')

  def __getitem__(self, i: int) -> Record:
    hr = image_io.load_rgb(self._hr_paths[i])
    lr = image_io.load_rgb(self._lr_paths[i]) if self._lr_paths else None
    return Record(hr, lr, self._hr_paths[i])


class TfdsSource:
  """Records of a TFDS random-access data source (`builder.as_data_source`)."""

  def __init__(self, data_source, image_key: str, lr_key: str, lr_scale: int, label: str):
    self._ds = data_source
    self._image_key = image_key
    self._lr_key = lr_key
    self.lr_scale = lr_scale if lr_key else 0
    self._label = label

  def __len__(self) -> int:
    return len(self._ds)

  def name(self, i: int) -> str:
    return f'{self._label}[{i}]'

  def key(self, i: int) -> str:
    return f'{i:06d}'

  def __getitem__(self, i: int) -> Record:
    try:
      example = self._ds[i]
      hr = image_io.to_rgb_uint8(example[self._image_key])
      lr = image_io.to_rgb_uint8(example[self._lr_key]) if self._lr_key else None
    except Exception as e:  # A corrupt record can fail anywhere in TFDS decoding.
      raise image_io.UnreadableImageError(f'cannot decode {self.name(i)}: {e}') from e
    return Record(hr, lr, self.name(i))


def list_images(folder: str) -> list[str]:
  """Sorted image files under `folder` (recursive; local or a URI); a clear error when there
  are none."""
  if not folder:
    raise ValueError("source='folder' needs a folder: set data.path (and data.eval.path).")
  root = paths.resolve(folder)
  if not root.is_dir():
    raise FileNotFoundError(
        f'Image folder {folder!r} does not exist: fix data.path / data.eval.path.')
  found = [parts for parts in paths.files_under(root)
           if parts[-1].lower().endswith(image_io.IMAGE_EXTENSIONS)]
  # A folder's files (sorted) before its subfolders (sorted, each in turn), whatever order the
  # storage lists them in: the record indices, and so the batches, must not depend on it.
  found = [str(root.joinpath(*parts)) for parts in sorted(found, key=_walk_order)]
  if not found:
    raise ValueError(f'No images ({", ".join(image_io.IMAGE_EXTENSIONS)}) under {folder!r}: '
                     'copy the dataset there or point data.path / data.eval.path elsewhere.')
  return found


def _walk_order(parts: tuple[str, ...]) -> list[tuple[int, str]]:
  return [(1, d) for d in parts[:-1]] + [(0, parts[-1])]


def _match_lr(hr_paths: list[str], lr_folder: str, scale: int) -> list[str]:
  """The LR file of each HR file, by stem: `0001.png` or DIV2K's `0001x4.png`."""
  if scale < 2:
    raise ValueError('Official LR images (lr_path) need data.lr_scale, an integer >= 2.')
  by_stem = {paths.resolve(p).stem: p for p in list_images(lr_folder)}
  matched, missing = [], []
  for p in hr_paths:
    stem = paths.resolve(p).stem
    lr = by_stem.get(stem) or by_stem.get(f'{stem}x{scale}')
    matched.append(lr)
    if lr is None:
      missing.append(stem)
  if missing:
    raise ValueError(f'{len(missing)} HR images have no LR image in {lr_folder!r} (expected '
                     f'<stem>.<ext> or <stem>x{scale}.<ext>), e.g. {missing[:5]}.')
  return matched


def import_tfds():
  """tensorflow_datasets, which brings TensorFlow: only the TFDS source needs it."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("data.source='tfds' needs TensorFlow Datasets, an extra of this package: "
                      "pip install 'idm_jax[tfds]' (or use source='folder').") from e
  return tfds


def _tfds_keys(name: str, features, image_key: str, lr_key: str) -> tuple[str, str]:
  """Resolves 'auto' image keys from the known-dataset table or the feature types."""
  tfds = import_tfds()
  known = _KNOWN_TFDS_KEYS.get(name)
  images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
  if image_key == 'auto':
    if known:
      image_key = known[0]
    elif len(images) == 1:
      image_key = images[0]
    else:
      raise ValueError(f'TFDS {name!r} has image features {images}: set data.tfds.image_key.')
  if lr_key == 'auto':
    lr_key = known[1] if known else ''
  for key in (image_key, lr_key):
    if key and key not in features:
      raise ValueError(f'TFDS {name!r} has no feature {key!r}; its features: {list(features)}.')
  return image_key, lr_key


def _open_tfds(tcfg: ml_collections.ConfigDict, split: str, lr_scale: int):
  """Builds (and if allowed prepares) the TFDS builder; clear errors for every way this fails."""
  tfds = import_tfds()
  if not tcfg.name:
    raise ValueError("source='tfds' needs data.tfds.name, e.g. 'div2k' or 'celeb_a_hq'.")
  full_name = f'{tcfg.name}/{tcfg.config}' if tcfg.config else tcfg.name
  try:
    builder = tfds.builder(full_name, data_dir=tcfg.data_dir or None, file_format='array_record')
  except tfds.core.registered.DatasetNotFoundError as e:
    close = difflib.get_close_matches(
        tcfg.name, tfds.list_builders(with_community_datasets=False), n=3)
    raise ValueError(f'Unknown TFDS dataset {tcfg.name!r} (closest: {close}): fix data.tfds.name '
                     'from the catalogue at https://www.tensorflow.org/datasets/catalog, '
                     "or use source='folder'.") from e
  if not builder.is_prepared():
    if builder.MANUAL_DOWNLOAD_INSTRUCTIONS and not (
        tcfg.manual_dir and paths.resolve(tcfg.manual_dir).is_dir()):
      raise ValueError(
          f'TFDS {full_name!r} needs a manual download: put its files in a folder and set '
          f'data.tfds.manual_dir to it (now {tcfg.manual_dir!r}). Instructions: '
          f'{builder.MANUAL_DOWNLOAD_INSTRUCTIONS.strip()}')
    if not tcfg.download:
      raise ValueError(f'TFDS {full_name!r} is not prepared in {builder.data_dir!r}: set '
                       'data.tfds.download=True, data.tfds.data_dir, or run `tfds build`.')
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=tcfg.manual_dir or None))
  image_key, lr_key = _tfds_keys(tcfg.name, builder.info.features, tcfg.image_key, tcfg.lr_key)
  if lr_key:
    match = re.search(r'x(\d+)$', tcfg.config)
    if not lr_scale and match:
      lr_scale = int(match.group(1))
    if lr_scale < 2:
      raise ValueError(f'Cannot tell the scale of the LR images of {full_name!r}: '
                       'set data.lr_scale.')
  return builder.as_data_source(split=split), image_key, lr_key, lr_scale, f'{full_name}/{split}'


def make_source(config: ml_collections.ConfigDict, split: str):
  """The source of `split` ('train' or 'eval') for a data config."""
  if split not in ('train', 'eval'):
    raise ValueError(f"split must be 'train' or 'eval', got {split!r}.")
  if config.source == 'embedded':
    return EmbeddedSource('train' if split == 'train' else 'validation')
  if config.source == 'folder':
    path, lr_path = (config.path, config.lr_path) if split == 'train' else (
        config.eval.path, config.eval.lr_path)
    hr_paths = list_images(path)
    if not lr_path:
      return FolderSource(path, hr_paths)
    lr_paths = _match_lr(hr_paths, lr_path, config.lr_scale)
    return FolderSource(path, hr_paths, lr_paths, config.lr_scale)
  if config.source == 'tfds':
    tfds_split = config.tfds.split if split == 'train' else config.eval.split
    ds, image_key, lr_key, lr_scale, label = _open_tfds(config.tfds, tfds_split, config.lr_scale)
    return TfdsSource(ds, image_key, lr_key, lr_scale, label)
  raise ValueError(f"data.source must be 'embedded', 'folder' or 'tfds', not {config.source!r}.")
