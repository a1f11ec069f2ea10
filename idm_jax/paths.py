"""The one path type for every file the project reads or writes: `etils.epath.Path`.

Local paths and object-store URIs (`gs://`, `s3://`, ...) behave the same: a TPU pod's workers
must share one workdir, and only a bucket gives them that. `pathlib.Path('gs://b/x').absolute()`
would silently become `<cwd>/gs:/b/x`, a local folder per worker; `resolve` never does that.
"""
import os
import re

from etils import epath

PathLike = str | os.PathLike

_URI = re.compile(r'^[a-zA-Z][a-zA-Z0-9+.-]*://')


def is_uri(path: PathLike) -> bool:
  """True for `scheme://...` (an object store), False for a local path."""
  return bool(_URI.match(os.fspath(path)))


def resolve(path: PathLike) -> epath.Path:
  """`path` as an `epath.Path`: URIs unchanged, local paths absolute (Orbax needs them so)."""
  if is_uri(path):
    return epath.Path(os.fspath(path))
  return epath.Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
