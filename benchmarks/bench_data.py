"""Input pipeline throughput (pairs/s) on PNG files, printed as JSON.

Two settings: face-style 16 -> 128 pairs (128x128 PNGs, PIL-bicubic LR made on the fly, as
FFHQ/CelebA-HQ) and DIV2K-style 40 -> 160 patches (480x480 HR PNGs with official x4 LR PNGs, as
the DIV2K sub-image folders). The temporary PNGs are smooth random images, so they compress like
photographs. For each num_workers:num_threads combination it reports wall-clock pairs/s and the
CPU milliseconds per pair of this process and its worker processes (Linux /proc), which other jobs
on the machine distort far less than the wall clock.
Usage: python benchmarks/bench_data.py [--steps=40] [--faces=512 --div2k=64 --batches=32,16]
"""
import glob
import json
import os
import platform
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
from PIL import Image

from idm_jax.config import data as config_lib
from idm_jax.data import imresize
from idm_jax.data import pipeline

_STEPS = flags.DEFINE_integer('steps', 40, 'Timed batches per measurement.')
_WARMUP = flags.DEFINE_integer('warmup', 4, 'Untimed batches first (worker start-up).')
_WORKERS = flags.DEFINE_list('workers', ['0:0', '0:2', '2:1'],
                             'num_workers:num_threads combinations to measure.')
_FACES = flags.DEFINE_integer('faces', 512, 'Face-style 128x128 PNGs written.')
_DIV2K = flags.DEFINE_integer('div2k', 64, 'DIV2K-style 480x480 PNGs (with x4 LR) written.')
_BATCHES = flags.DEFINE_list('batches', ['32', '16'], 'Batch sizes: faces, DIV2K.')


def _photo_like(rng: np.random.Generator, side: int) -> np.ndarray:
  """A smooth random uint8 (side, side, 3) image with some fine grain."""
  coarse = rng.integers(0, 256, (side // 16, side // 16, 3), dtype=np.uint8)
  img = np.asarray(Image.fromarray(coarse).resize((side, side), Image.Resampling.BICUBIC))
  grain = rng.normal(0, 6, img.shape)
  return np.clip(img + grain, 0, 255).astype(np.uint8)


def _write_faces(folder: str, count: int) -> None:
  rng = np.random.default_rng(0)
  for i in range(count):
    Image.fromarray(_photo_like(rng, 128)).save(os.path.join(folder, f'{i:05d}.png'))


def _write_div2k(hr_folder: str, lr_folder: str, count: int) -> None:
  rng = np.random.default_rng(1)
  for i in range(count):
    hr = _photo_like(rng, 480)
    Image.fromarray(hr).save(os.path.join(hr_folder, f'{i:04d}.png'))
    Image.fromarray(imresize.imresize(hr, scale=0.25)).save(
        os.path.join(lr_folder, f'{i:04d}x4.png'))


def _cpu_seconds() -> float:
  """User + system CPU time of this process and its live children."""
  total, me, tick = 0.0, os.getpid(), os.sysconf('SC_CLK_TCK')
  for stat in glob.glob('/proc/[0-9]*/stat'):
    try:
      with open(stat) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    except OSError:  # The process ended meanwhile.
      continue
    if int(stat.split('/')[2]) == me or int(fields[1]) == me:
      total += (int(fields[11]) + int(fields[12])) / tick
  return total


def _measure(cfg, batch_size: int) -> tuple[float, float]:
  """(pairs per second, CPU ms per pair over this process and its workers)."""
  pipe = pipeline.TrainPipeline(cfg, batch_size, seed=0)
  it = pipe.iterate(0)
  for _ in range(_WARMUP.value):
    next(it)
  start, cpu_start = time.perf_counter(), _cpu_seconds()
  for _ in range(_STEPS.value):
    next(it)
  elapsed, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
  it.close()
  pairs = _STEPS.value * batch_size
  return pairs / elapsed, 1e3 * cpu / pairs


def main(argv):
  del argv
  results = {'machine': f'{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs',
             'steps': _STEPS.value, 'load_average_before': os.getloadavg()[0]}
  with tempfile.TemporaryDirectory() as tmp:
    faces = os.path.join(tmp, 'faces')
    div2k_hr, div2k_lr = os.path.join(tmp, 'div2k_hr'), os.path.join(tmp, 'div2k_lr')
    for d in (faces, div2k_hr, div2k_lr):
      os.makedirs(d)
    _write_faces(faces, _FACES.value)
    _write_div2k(div2k_hr, div2k_lr, _DIV2K.value)

    face_cfg = config_lib.default_data_config()
    face_cfg.update(source='folder', path=faces, lr_size=16, min_hr_size=16, max_hr_size=128,
                    degradation='pil_bicubic')
    div2k_cfg = config_lib.default_data_config()
    div2k_cfg.update(source='folder', path=div2k_hr, lr_path=div2k_lr, lr_scale=4, lr_size=40,
                     min_hr_size=40, max_hr_size=160, degradation='matlab_bicubic')
    face_batch, div2k_batch = (int(b) for b in _BATCHES.value)
    for name, cfg, batch in (('faces_16_128', face_cfg, face_batch),
                             ('div2k_40_160', div2k_cfg, div2k_batch)):
      for combo in _WORKERS.value:
        workers, threads = (int(v) for v in combo.split(':'))
        cfg.update(num_workers=workers, num_threads=threads)
        rate, cpu_ms = _measure(cfg, batch)
        key = f'{name}/workers={workers},threads={threads}'
        results[f'{key}/pairs_per_s'] = round(rate, 1)
        results[f'{key}/cpu_ms_per_pair'] = round(cpu_ms, 3)
  results['load_average_after'] = os.getloadavg()[0]
  print(json.dumps(results, indent=2))


if __name__ == '__main__':
  app.run(main)
