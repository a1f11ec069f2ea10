"""The one path type for every file the project reads or writes: `etils.epath.Path`.

Local paths and object-store URIs (`gs://`, `s3://`, `az://`) behave the same: a TPU pod's
workers must share one workdir, and only a bucket gives them that.
`pathlib.Path('gs://b/x').absolute()` would silently become `<cwd>/gs:/b/x`, a local folder per
worker; `resolve` never does that. epath serves buckets through fsspec (gcsfs, s3fs, adlfs), also
where TensorFlow is installed (the TFDS extra): its tf.io.gfile backend would import TensorFlow
on the main job's path (EPATH_USE_TF=true restores it).

Checkpoints are narrower: Orbax writes their arrays through TensorStore, which it points at the
local file system or at GCS and nothing else (orbax-checkpoint 0.12), so a checkpoint folder is
local (a shared file system on a cluster) or `gs://` (`checkpoint_dir`).
"""
import importlib.util
import os
import re

import fsspec

os.environ.setdefault('EPATH_USE_TF', 'false')  # Read by etils at its first path operation.

# pylint: disable=g-import-not-at-top,wrong-import-position
from etils import epath

PathLike = str | os.PathLike

_URI = re.compile(r'^([a-zA-Z][a-zA-Z0-9+.-]*)://')
# Each scheme's fsspec backend, and how to install it.
_BACKENDS = {'gs': ('gcsfs', 'pip install gcsfs (a dependency of idm_jax)'),
             's3': ('s3fs', 'pip install "idm_jax[s3]"'),
             'az': ('adlfs', 'pip install adlfs')}
SCHEMES = tuple(_BACKENDS)


def is_uri(path: PathLike) -> bool:
  """True for `scheme://...` (an object store), False for a local path."""
  return bool(_URI.match(os.fspath(path)))


def resolve(path: PathLike) -> epath.Path:
  """`path` as an `epath.Path`: URIs unchanged, local paths absolute (Orbax needs them so)."""
  match = _URI.match(os.fspath(path))
  if match:
    scheme = match.group(1)
    if scheme not in SCHEMES:
      raise ValueError(f'{os.fspath(path)}: {scheme}:// is not a storage this project '
                       f'reads or writes; pass a local path or one of '
                       f'{", ".join(s + "://" for s in SCHEMES)}.')
    module, install = _BACKENDS[scheme]
    if importlib.util.find_spec(module) is None:
      raise ValueError(f'{os.fspath(path)}: {scheme}:// paths need {module}, which is not '
                       f'installed: {install}.')
    return epath.Path(os.fspath(path))
  return epath.Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def checkpoint_dir(path: PathLike) -> epath.Path:
  """`resolve(path)` for a checkpoint folder: local or gs://, the storages Orbax writes."""
  if is_uri(path) and not os.fspath(path).startswith('gs://'):
    raise ValueError(
        f'{os.fspath(path)}: checkpoints cannot live on {os.fspath(path).split(":")[0]}://, '
        'since Orbax writes their arrays to local disks and gs:// only. Keep checkpoints (the '
        'training --workdir, --teacher, --checkpoint, convert\'s --output) on a local or shared '
        'file system or in a gs:// bucket; image folders and other outputs may stay there.')
  return resolve(path)


def files_under(root: epath.Path) -> list[tuple[str, ...]]:
  """Every file below the folder `root`, as its path parts relative to `root`, in no set order.

  An object store's prefix is listed by fsspec's `find`: one paginated listing, where epath's
  walk lists folder by folder and (etils 1.15) hands s3fs an argument it rejects.
  """
  if is_uri(root):
    fs, prefix = fsspec.core.url_to_fs(os.fspath(root))
    prefix = prefix.rstrip('/') + '/'
    return [tuple(p[len(prefix):].split('/')) for p in fs.find(prefix) if p.startswith(prefix)]
  return [tuple(os.path.relpath(os.path.join(folder, name), root).split(os.sep))
          for folder, _, names in os.walk(root) for name in names]
