"""The validation pass: a fixed set at fixed scales, sampled with a fast sampler from fixed noise.

Reports PSNR/SSIM of IDM and of bicubic upsampling (MATLAB `imresize`, the usual SR baseline)
and a comparison picture with one row per image and scale: LR | bicubic | IDM | HR.
"""
import dataclasses
import json
import pathlib
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import nnx
from PIL import Image

from idm_jax.data import imresize as imresize_lib
from idm_jax.data import pipeline
from idm_jax.diffusion import config as diffusion_config
from idm_jax.diffusion import sampling
from idm_jax.evaluation import metrics as metrics_lib
from idm_jax.models import scale as scale_lib

_GAP = 2  # Pixels between the panels of the comparison picture.


@dataclasses.dataclass
class Result:
  """One pass: aggregate scalars, per-image records and the SR images (H, W, 3) in [-1, 1]."""
  scalars: dict[str, float]
  records: list[dict[str, Any]]
  images: list[np.ndarray]


def _mean(records: list[dict[str, float]], key: str) -> float:
  return float(np.mean([r[key] for r in records]))


def _label(scale: float) -> str:
  return f'x{scale:g}'


class Validator:
  """Holds the validation pairs and their bicubic baselines, computed once."""

  def __init__(self, config: ml_collections.ConfigDict):
    self._config = config
    data_config = ml_collections.ConfigDict(config.data.to_dict())
    data_config.eval.max_images = min(config.data.eval.max_images, config.eval.num_images)
    self.pairs = pipeline.eval_pairs(data_config, config.eval.scales)
    self.bicubic = [np.clip(imresize_lib.imresize(p['lr'], output_hw=p['hr'].shape[:2]), -1, 1)
                    for p in self.pairs]
    self._bicubic_metrics = [self._metrics(b, p) for b, p in zip(self.bicubic, self.pairs)]
    # The same noise every pass, so passes differ only by the weights.
    self._key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0x7A11D)

  @staticmethod
  def _metrics(sr: np.ndarray, pair: dict[str, Any]) -> dict[str, float]:
    return metrics_lib.image_metrics(
        sr, pair['hr'], crop_border=metrics_lib.crop_border_for_scale(pair['scale']))

  def run(self, model: nnx.Module) -> Result:
    """Samples every pair with `config.sampler`; model: the network, on one device."""
    max_scale = self._config.model.max_scale
    requests = []
    for p in self.pairs:
      lr_hw, out_hw = p['lr'].shape[:2], p['hr'].shape[:2]
      scale = scale_lib.output_scale(lr_hw, out_hw)
      requests.append((p['lr'][None], out_hw, np.atleast_1d(scale_lib.scale_to_p(scale,
                                                                               max_scale))))
    outputs = sampling.sample_requests(model, requests, self._key,
                                       diffusion_config.resolve_sampler(self._config),
                                       self._config.diffusion)
    images = [np.clip(np.asarray(o[0], np.float32), -1, 1) for o in outputs]
    records = []
    for pair, sr, bic in zip(self.pairs, images, self._bicubic_metrics):
      records.append({'name': pair['name'], 'scale': pair['scale'],
                      'idm': self._metrics(sr, pair), 'bicubic': bic})
    scalars = {}
    for scale in self._config.eval.scales:
      group = [r for r in records if r['scale'] == scale]
      for method in ('idm', 'bicubic'):
        for key in ('psnr', 'ssim'):
          name = f'val_{key}_{_label(scale)}' + ('' if method == 'idm' else '_bicubic')
          scalars[name] = _mean([r[method] for r in group], key)
    scalars['val_psnr'] = _mean([r['idm'] for r in records], 'psnr')
    scalars['val_ssim'] = _mean([r['idm'] for r in records], 'ssim')
    return Result(scalars=scalars, records=records, images=images)

  def picture(self, result: Result) -> np.ndarray:
    """uint8 (rows, cols, 3): per pair LR (nearest) | bicubic | IDM | HR, rows padded white."""
    rows = []
    for pair, bic, sr in zip(self.pairs, self.bicubic, result.images):
      h, w = pair['hr'].shape[:2]
      lr = pair['lr']
      nearest = lr[(np.arange(h) * lr.shape[0] // h)][:, (np.arange(w) * lr.shape[1] // w)]
      panels = [nearest, bic, sr, pair['hr']]
      gap = np.ones((h, _GAP, 3), np.float32)
      row = np.concatenate([x for panel in panels for x in (panel, gap)][:-1], axis=1)
      rows.append(row)
    width = max(r.shape[1] for r in rows)
    padded = []
    for row in rows:
      padded.append(np.pad(row, ((0, _GAP), (0, width - row.shape[1]), (0, 0)),
                           constant_values=1.0))
    grid = np.concatenate(padded, axis=0)[:-_GAP]
    return np.round((grid + 1) * 127.5).astype(np.uint8)

  def write_report(self, result: Result, step: int, json_path: pathlib.Path,
                   png_path: pathlib.Path) -> None:
    """JSON with per-scale means of IDM and bicubic and per-image records; the picture as PNG."""
    summary = {}
    for scale in self._config.eval.scales:
      group = [r for r in result.records if r['scale'] == scale]
      summary[_label(scale)] = {
          method: {key: _mean([r[method] for r in group], key)
                   for key in ('psnr', 'ssim', 'psnr_y', 'ssim_y')}
          for method in ('idm', 'bicubic')}
      summary[_label(scale)]['images'] = len(group)
    report = {'step': int(step), 'sampler': self._config.sampler.to_dict(),
              'columns': ['LR (nearest)', 'bicubic', 'IDM', 'HR'], 'scales': summary,
              'images': result.records}
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2))
    Image.fromarray(self.picture(result)).save(png_path)
