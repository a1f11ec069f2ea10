"""The one evaluation: the config's validation images at its scales, sampled over the mesh.

Training's periodic validation, `python -m idm_jax.main --mode=eval` and `idm-jax evaluate` all
run `Evaluator`, so they measure the same pairs with the same noise and report the same numbers.
Every number comes from `metrics.image_metrics` on the 8-bit images that are written as PNGs:
  psnr, ssim       RGB, peak 255, `ceil(scale)` pixels cropped from every edge (basicsr);
  psnr_y, ssim_y   BT.601 luma (MATLAB `rgb2ycbcr`), the same crop;
  lr_consistency   MSE(bicubic_down(SR), LR) on [0, 1], reported x 1e5 (SR3, IDM), no crop.
SSIM uses the 11x11 Gaussian window, sigma 1.5. Each input is sampled `eval.num_samples` times:
`<metric>_mean` and `<metric>_std` are the mean and the population std over those samples. A
scale's `mean` row is the mean of each column over its images (its `_std`: the mean spread).
The network's scale input is that of the real pair, `output_scale(lr_hw, hr_hw)`. A gray input (an
LR with three equal channels) gets gray samples, the mean of their channels, as `idm-jax upscale`
writes them.
"""
import dataclasses
import os
import time
import zlib
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from idm_jax import mesh as mesh_lib
from idm_jax.data import image_io
from idm_jax.data import imresize as imresize_lib
from idm_jax.data import pipeline
from idm_jax.evaluation import metrics
from idm_jax.inference import batching
from idm_jax.inference import sampler as inference_sampler
from idm_jax.scale import output_scale, scale_to_p

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
    'bicubic': 'MATLAB imresize of the LR input, measured the same way',
    'gray': 'an LR with three equal channels gets SR samples with the mean of their channels in '
            'each (as idm-jax upscale writes them)',
}
# Seed offset of the sampling noise, so it differs from the training noise of the same seed.
_EVAL_STREAM = 0x7A11D


@dataclasses.dataclass
class Result:
  """One pass: the report (what metrics.json holds), and per pair its pair and SR samples."""
  report: dict[str, Any]
  pairs: list[dict[str, Any]]
  samples: list[list[np.ndarray]]  # Per pair, its samples (H, W, 3) float32 in [-1, 1].
  bicubic: list[np.ndarray]  # Per pair, the bicubic upsampling of its LR.

  @property
  def scalars(self) -> dict[str, float]:
    """TensorBoard scalars: per scale `val_<metric>_x<scale>` (and `_bicubic`), and overall."""
    out = {}
    for entry in self.report['scales']:
      label = f'x{entry["scale"]:g}'
      for m in METRICS:
        out[f'val_{m}_{label}'] = entry['mean'][f'{m}_mean']
        out[f'val_{m}_{label}_bicubic'] = entry['bicubic'][m]
    records = [r for entry in self.report['scales'] for r in entry['images']]
    for m in ('psnr', 'ssim'):
      out[f'val_{m}'] = float(np.mean([r[f'{m}_mean'] for r in records]))
    return out


def _name_id(pair: dict) -> int:
  """A stable 31-bit number for a pair's name (`coffee_x2`), for its sampling keys."""
  return zlib.crc32(pair['name'].encode()) & 0x7FFFFFFF


def sample_file(pair: dict, k: int) -> str:
  """Where report.write puts sample k of a pair, relative to the report folder."""
  return f'images/{pair["name"]}_s{k}.png'


def _measure(sr: np.ndarray, pair: dict[str, Any]) -> dict[str, float]:
  return metrics.image_metrics(sr, pair['hr'], pair['lr'],
                               crop_border=metrics.crop_border_for_scale(pair['scale']))


class Evaluator:
  """The validation pairs of a config, their bicubic baselines, and their sampling over a mesh."""

  def __init__(self, config: ml_collections.ConfigDict, mesh: Mesh):
    self._config = config
    self._mesh = mesh
    self.pairs = pipeline.eval_pairs(config.data, config.eval.scales, config.eval.num_images)
    self.bicubic = [np.clip(imresize_lib.imresize(p['lr'], output_hw=p['hr'].shape[:2]), -1, 1)
                    for p in self.pairs]
    self._bicubic_metrics = [_measure(b, p) for b, p in zip(self.bicubic, self.pairs)]
    self._gray = [image_io.has_equal_channels(p['lr']) for p in self.pairs]
    self._sampler: inference_sampler.Sampler | None = None

  def _requests(self, max_scale: float) -> tuple[list[batching.Request], list[int]]:
    """Every sample of every pair, and the pair each belongs to. Sample j of a pair uses the key
    `fold_in(fold_in(key, crc32(pair name)), j)`, so it does not depend on the batch size, the
    device count or the other requests."""
    cfg = self._config
    key = jax.random.fold_in(jax.random.key(cfg.seed), _EVAL_STREAM)
    requests, owners = [], []
    for i, pair in enumerate(self.pairs):
      lr_hw, hr_hw = pair['lr'].shape[:2], pair['hr'].shape[:2]
      p = float(scale_to_p(output_scale(lr_hw, hr_hw), max_scale))
      pair_key = jax.random.fold_in(key, _name_id(pair))
      for j in range(cfg.eval.num_samples):
        requests.append(batching.Request(pair['lr'], hr_hw, p, jax.random.fold_in(pair_key, j)))
        owners.append(i)
    return requests, owners

  def run(self, model: nnx.Module, **details: Any) -> Result:
    """Samples and measures every pair; `details` (step, checkpoint, ...) go into the report.

    `model`: the network with its parameters on this evaluator's mesh (replicated or split).
    Requests of one (LR size, HR size) run in calls of at most `eval.per_device_batch` per
    device (`inference.batching`).
    """
    cfg = self._config
    start = time.perf_counter()
    if self._sampler is None:
      self._sampler = inference_sampler.Sampler(model, cfg, self._mesh)
    else:
      self._sampler.model = model  # New weights, same programs (compiled on every process).
    requests, owners = self._requests(model.config.max_scale)
    samples: list[list[np.ndarray]] = [[] for _ in self.pairs]
    for index, image in self._sampler.run(requests, cfg.eval.per_device_batch):
      if self._gray[owners[index]]:
        image = image_io.to_gray(image)
      samples[owners[index]].append(np.clip(image, -1, 1))
    records = []
    for pair, sr, bicubic in zip(self.pairs, samples, self._bicubic_metrics):
      records.append({
          'image': pair['name'], 'scale': pair['scale'], 'lr_hw': list(pair['lr'].shape[:2]),
          'hr_hw': list(pair['hr'].shape[:2]),
          'crop_border': metrics.crop_border_for_scale(pair['scale']), 'num_samples': len(sr),
          **metrics.summarize([_measure(s, pair) for s in sr]),
          'bicubic': bicubic,
          'files': [sample_file(pair, k) for k in range(len(sr))]})
    per_scale = []
    for scale in cfg.eval.scales:
      rows = [r for r in records if r['scale'] == float(scale)]
      per_scale.append({
          'scale': float(scale), 'num_images': len(rows),
          'mean': {c: float(np.mean([r[c] for r in rows])) for c in COLUMNS},
          'bicubic': {m: float(np.mean([r['bicubic'][m] for r in rows])) for m in METRICS},
          'images': rows})
    report = {**details, 'num_samples': cfg.eval.num_samples, 'num_devices': self._mesh.size,
              'seconds': time.perf_counter() - start, 'sampler': self._sampler.settings.to_dict(),
              'conventions': CONVENTIONS, 'scales': per_scale}
    return Result(report=report, pairs=self.pairs, samples=samples, bicubic=self.bicubic)


def evaluate_checkpoint(config: ml_collections.ConfigDict, checkpoint_dir: str | os.PathLike, *,
                        use_ema: bool = True) -> Result:
  """Restores a checkpoint's (EMA) parameters replicated over the config's mesh; evaluates."""
  mesh = mesh_lib.make_mesh(config.mesh)
  model, step = inference_sampler.load_model(config.model, checkpoint_dir, use_ema=use_ema,
                                             sharding=mesh_lib.replicated(mesh),
                                             sampler_name=config.sampler.name)
  return Evaluator(config, mesh).run(model, checkpoint=os.fspath(checkpoint_dir), step=step,
                                     params='ema' if use_ema else 'raw')
