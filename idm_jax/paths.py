"""The one path type for every file the project reads or writes: `etils.epath.Path`.

Local paths and object-store URIs (`gs://`, `s3://`, `az://`) behave the same: a TPU pod's
workers must share one workdir, and only a bucket gives them that.
`pathlib.Path('gs://b/x').absolute()` would silently become `<cwd>/gs:/b/x`, a local folder per
worker; `resolve` never does that. epath serves buckets through fsspec (gcsfs, s3fs), also where
TensorFlow is installed (the TFDS extra): its tf.io.gfile backend would import TensorFlow on the
main job's path (EPATH_USE_TF=true restores it).
"""
import os
import re

os.environ.setdefault('EPATH_USE_TF', 'false')  # Read by etils at its first path operation.

# pylint: disable=g-import-not-at-top,wrong-import-position
from etils import epath

PathLike = str | os.PathLike

_URI = re.compile(r'^([a-zA-Z][a-zA-Z0-9+.-]*)://')
SCHEMES = ('gs', 's3', 'az')


def is_uri(path: PathLike) -> bool:
  """True for `scheme://...` (an object store), False for a local path."""
  return bool(_URI.match(os.fspath(path)))


def resolve(path: PathLike) -> epath.Path:
  """`path` as an `epath.Path`: URIs unchanged, local paths absolute (Orbax needs them so)."""
  match = _URI.match(os.fspath(path))
  if match:
    if match.group(1) not in SCHEMES:
      raise ValueError(f'{os.fspath(path)}: {match.group(1)}:// is not a storage this project '
                       f'reads or writes; pass a local path or one of '
                       f'{", ".join(s + "://" for s in SCHEMES)}.')
    return epath.Path(os.fspath(path))
  return epath.Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
