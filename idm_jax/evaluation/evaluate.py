"""Evaluate a checkpoint on the validation images at many scales: JSON, CSV and PNGs.

Every number comes from `metrics.image_metrics` on the 8-bit images that are written as PNGs:
  psnr, ssim       RGB, peak 255, `ceil(scale)` pixels cropped from every edge (basicsr);
  psnr_y, ssim_y   BT.601 luma (MATLAB `rgb2ycbcr`), the same crop;
  lr_consistency   MSE(bicubic_down(SR), LR) on [0, 1], reported x 1e5 (SR3, IDM), no crop.
SSIM uses the 11x11 Gaussian window, sigma 1.5. Each input is sampled `num_samples` times:
`<metric>_mean` and `<metric>_std` are the mean and the population std over those samples. A
scale's `mean` row is the mean of each column over its images (its `_std`: the mean spread).
The network's scale input is that of the real pair, `output_scale(lr_hw, hr_hw)`.
"""
import csv
import json
import os
import pathlib
import time
import zlib
from typing import Any, Iterator, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from idm_jax.data import pipeline
from idm_jax.diffusion import config as diffusion_config
from idm_jax.diffusion import sampling
from idm_jax.evaluation import image_output
from idm_jax.evaluation import inference_model
from idm_jax.evaluation import metrics
from idm_jax.models.scale import output_scale, scale_to_p
from idm_jax.training import mesh as mesh_lib

METRICS = ('psnr', 'ssim', 'psnr_y', 'ssim_y', 'lr_consistency')
COLUMNS = tuple(f'{m}_{stat}' for m in METRICS for stat in ('mean', 'std'))
CONVENTIONS = {
    'psnr': 'RGB, 8-bit, peak 255, ceil(scale) px cropped from each edge',
    'ssim': 'RGB, 8-bit, 11x11 Gaussian window (sigma 1.5), ceil(scale) px cropped',
    'psnr_y': 'BT.601 Y (MATLAB rgb2ycbcr), 8-bit, ceil(scale) px cropped',
    'ssim_y': 'BT.601 Y, 8-bit, 11x11 Gaussian window (sigma 1.5), ceil(scale) px cropped',
    'lr_consistency': 'MSE(MATLAB bicubic down(SR), LR) on [0, 1] x 1e5, no crop',
    '_mean/_std': 'mean and population std over the samples of one input; a scale\'s mean row '
                  'averages each column over its images',
}
# Requests per device in one sampling call (the last call of a size is padded to the same).
PER_DEVICE_BATCH = 8


def _pair_p(pair: dict, max_scale: float) -> float:
  """The network's scale input for an `eval_pairs` pair: from its real size ratio."""
  return float(scale_to_p(output_scale(pair['lr'].shape[:2], pair['hr'].shape[:2]), max_scale))


def _name_id(pair: dict) -> int:
  """A stable 31-bit number for a pair's name (`coffee_x2`), for its sampling keys."""
  return zlib.crc32(pair['name'].encode()) & 0x7FFFFFFF


def _samples(model: nnx.Module, pairs: Sequence[dict], num_samples: int, key: jax.Array,
             config: ml_collections.ConfigDict, mesh: Mesh,
             per_device_batch: int) -> Iterator[tuple[int, int, np.ndarray]]:
  """Yields (pair index, sample index, SR float32 (H, W, 3)) for every sample of every pair.

  Requests of one (LR size, HR size) run in calls of one batch size (one compile per size): at
  most `per_device_batch` per device, padded to a multiple of the device count, split over
  'data'. Sample j of a pair uses the key `fold_in(fold_in(key, crc32(pair name)), j)`, so it
  does not depend on the batch size, the device count, the other scales or the other requests.
  """
  sampler = diffusion_config.resolve_sampler(config)
  sampler.trajectory_every = 0
  batch_sharding = NamedSharding(mesh, P(mesh_lib.DATA))
  groups: dict[tuple[Any, ...], list[tuple[int, int]]] = {}
  for i, pair in enumerate(pairs):
    size = (pair['lr'].shape, pair['hr'].shape)
    groups.setdefault(size, []).extend((i, j) for j in range(num_samples))
  for (_, hr_shape), items in groups.items():
    batch = min(-(-len(items) // mesh.size), per_device_batch) * mesh.size
    for start in range(0, len(items), batch):
      part = items[start:start + batch]
      padded = part + [part[-1]] * (batch - len(part))  # Padding outputs are dropped.
      lr = np.stack([pairs[i]['lr'] for i, _ in padded])
      p = np.array([_pair_p(pairs[i], model.config.max_scale) for i, _ in padded], np.float32)
      keys = jnp.stack([jax.random.fold_in(jax.random.fold_in(key, _name_id(pairs[i])), j)
                        for i, j in padded])
      keys = np.asarray(jax.random.key_data(keys))  # Raw key words: host data to lay out.
      args = (model, mesh_lib.put(lr, batch_sharding), hr_shape[:2],
              mesh_lib.put(p, batch_sharding), mesh_lib.put(keys, batch_sharding), sampler,
              config.diffusion)
      if start == 0 and jax.process_count() > 1:
        mesh_lib.compile_everywhere(sampling.lower(*args), f'sample_{lr.shape}_{hr_shape}')
      images = sampling.sample(*args)
      images = np.asarray(mesh_lib.to_local_device(images))
      for (i, j), image in zip(part, images):
        yield i, j, image


def _image_record(pair: dict, samples: list[np.ndarray], files: list[str]) -> dict[str, Any]:
  """Metrics of one input over its samples, with what identifies it."""
  crop = metrics.crop_border_for_scale(pair['scale'])
  per_sample = [metrics.image_metrics(sr, pair['hr'], pair['lr'], crop_border=crop)
                for sr in samples]
  return {'image': pair['name'], 'scale': pair['scale'], 'lr_hw': list(pair['lr'].shape[:2]),
          'hr_hw': list(pair['hr'].shape[:2]), 'crop_border': crop,
          'num_samples': len(samples), **metrics.summarize(per_sample), 'files': files}


def _scale_means(records: list[dict[str, Any]]) -> dict[str, float]:
  return {column: float(np.mean([r[column] for r in records])) for column in COLUMNS}


def _write_csv(path: pathlib.Path, per_scale: list[dict[str, Any]]) -> None:
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['scale', 'image', 'num_samples', *COLUMNS])
    for entry in per_scale:
      for r in entry['images']:
        writer.writerow([entry['scale'], r['image'], r['num_samples'], *(r[c] for c in COLUMNS)])
      writer.writerow([entry['scale'], 'mean', entry['images'][0]['num_samples'],
                       *(entry['mean'][c] for c in COLUMNS)])


def evaluate(config: ml_collections.ConfigDict, checkpoint_dir: str | os.PathLike,
             output_dir: str | os.PathLike, *, scales: Sequence[float] | None = None,
             num_samples: int | None = None, use_ema: bool = True,
             per_device_batch: int = PER_DEVICE_BATCH) -> dict[str, Any]:
  """Samples the validation set of `config.data` at every scale and measures it.

  Restores the checkpoint's (EMA) parameters replicated over all devices and splits every batch
  over them. Writes, under `output_dir` (from process 0): `metrics.json`, `metrics.csv` and
  `images/<image>_x<scale>_s<sample>.png`.

  Args:
    config: experiment config with `model`, `diffusion`, `sampler`, `data` and `eval.scales`.
    checkpoint_dir: an Orbax checkpoint directory of this project (training or `idm-jax convert`).
    output_dir: where to write.
    scales: upscaling factors; default `config.eval.scales`.
    num_samples: samples per input; default `config.eval.num_samples` if present, else 1.
    use_ema: restore the EMA parameters (else the raw ones).
    per_device_batch: requests per device in one sampling call.

  Returns:
    What `metrics.json` holds: run details, `conventions`, and per scale its `mean` and `images`.
  """
  eval_config = config.get('eval') or ml_collections.ConfigDict()
  scales = [float(s) for s in (eval_config.get('scales') if scales is None else scales) or ()]
  if not scales or min(scales) < 1:
    raise ValueError(f'scales {scales}: set eval.scales in the config or pass --scales, all >= 1.')
  num_samples = eval_config.get('num_samples', 1) if num_samples is None else num_samples
  if num_samples < 1 or per_device_batch < 1:
    raise ValueError(f'num_samples ({num_samples}) and per_device_batch ({per_device_batch}) '
                     'must be >= 1.')
  mesh = Mesh(np.asarray(jax.devices()), (mesh_lib.DATA,))
  model, step = inference_model.load_model(config.model, checkpoint_dir, use_ema=use_ema,
                                           sharding=NamedSharding(mesh, P()))
  pairs = pipeline.eval_pairs(config.data, scales)
  output_dir = pathlib.Path(output_dir)
  writer = jax.process_index() == 0
  key = jax.random.key(config.get('seed', 0))

  start = time.perf_counter()
  pending: dict[int, list[np.ndarray]] = {}
  records: dict[int, dict[str, Any]] = {}
  for i, j, image in _samples(model, pairs, num_samples, key, config, mesh, per_device_batch):
    pending.setdefault(i, []).append(image)
    if len(pending[i]) < num_samples:
      continue
    samples = pending.pop(i)
    files = [f'images/{pairs[i]["name"]}_s{k}.png' for k in range(num_samples)]
    if writer:
      for name, sample in zip(files, samples):
        image_output.save_png(output_dir / name, sample)
    records[i] = _image_record(pairs[i], samples, files)
  seconds = time.perf_counter() - start

  per_scale = []
  for scale in scales:
    rows = [records[i] for i in sorted(records) if records[i]['scale'] == scale]
    per_scale.append({'scale': scale, 'num_images': len(rows), 'mean': _scale_means(rows),
                      'images': rows})
  results = {
      'checkpoint': os.fspath(checkpoint_dir), 'step': step, 'params': 'ema' if use_ema else 'raw',
      'num_samples': num_samples, 'num_devices': mesh.size, 'seconds': seconds,
      'sampler': config.sampler.to_dict(), 'conventions': CONVENTIONS, 'scales': per_scale,
  }
  if writer:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / 'metrics.json').write_text(json.dumps(results, indent=2))
    _write_csv(output_dir / 'metrics.csv', per_scale)
  return results


def format_table(results: dict[str, Any]) -> str:
  """The per-scale means of `evaluate` as a text table (+- : mean spread over samples)."""
  heads = ('PSNR', 'SSIM', 'PSNR-Y', 'SSIM-Y', 'LR-cons x1e-5')
  digits = (2, 4, 2, 4, 2)
  lines = [f'{"scale":>6} {"images":>6} ' + ' '.join(f'{h:>17}' for h in heads)]
  for entry in results['scales']:
    cells = [f'{entry["mean"][m + "_mean"]:.{d}f} +- {entry["mean"][m + "_std"]:.{d}f}'
             for m, d in zip(METRICS, digits)]
    lines.append(f'{entry["scale"]:>6g} {entry["num_images"]:>6} '
                 + ' '.join(f'{c:>17}' for c in cells))
  return '\n'.join(lines)
