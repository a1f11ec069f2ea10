"""What an evaluation writes: metrics.json, metrics.csv, comparison.png and the sampled PNGs."""
import csv
import io
import json

import numpy as np
from etils import epath

from idm_jax import paths
from idm_jax.data import image_io
from idm_jax.evaluation import evaluator as evaluator_lib

_GAP = 2  # Pixels between the panels of the comparison picture.
PANELS = ('LR (nearest)', 'bicubic', 'IDM (sample 0)', 'HR')


def picture(result: evaluator_lib.Result) -> np.ndarray:
  """uint8 (rows, cols, 3): per pair LR (nearest) | bicubic | IDM | HR, rows padded white."""
  rows = []
  for pair, bicubic, samples in zip(result.pairs, result.bicubic, result.samples):
    h, w = pair['hr'].shape[:2]
    lr = pair['lr']
    nearest = lr[(np.arange(h) * lr.shape[0] // h)][:, (np.arange(w) * lr.shape[1] // w)]
    gap = np.ones((h, _GAP, 3), np.float32)
    panels = [nearest, bicubic, samples[0], pair['hr']]
    rows.append(np.concatenate([x for panel in panels for x in (panel, gap)][:-1], axis=1))
  width = max(r.shape[1] for r in rows)
  padded = [np.pad(r, ((0, _GAP), (0, width - r.shape[1]), (0, 0)), constant_values=1.0)
            for r in rows]
  return image_io.to_uint8(np.concatenate(padded, axis=0)[:-_GAP])


def _csv(report: dict) -> str:
  methods = [f'bicubic_{m}' for m in evaluator_lib.METRICS]
  with io.StringIO(newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['scale', 'image', 'num_samples', *evaluator_lib.COLUMNS, *methods])
    for entry in report['scales']:
      for r in entry['images']:
        writer.writerow([entry['scale'], r['image'], r['num_samples'],
                         *(r[c] for c in evaluator_lib.COLUMNS),
                         *(r['bicubic'][m] for m in evaluator_lib.METRICS)])
      writer.writerow([entry['scale'], 'mean', report['num_samples'],
                       *(entry['mean'][c] for c in evaluator_lib.COLUMNS),
                       *(entry['bicubic'][m] for m in evaluator_lib.METRICS)])
    return f.getvalue()


def write(result: evaluator_lib.Result, output_dir: paths.PathLike, *,
          images: bool = True) -> epath.Path:
  """metrics.json, metrics.csv and comparison.png in `output_dir`; with `images`, every sample
  as images/<image>_x<scale>_s<k>.png. Returns the folder."""
  output_dir = paths.resolve(output_dir)
  output_dir.mkdir(parents=True, exist_ok=True)
  if images:
    for pair, samples in zip(result.pairs, result.samples):
      for k, sample in enumerate(samples):
        image_io.save_png(output_dir / evaluator_lib.sample_file(pair, k), sample)
  (output_dir / 'metrics.json').write_text(
      json.dumps({**result.report, 'comparison_panels': PANELS}, indent=2))
  (output_dir / 'metrics.csv').write_text(_csv(result.report))
  image_io.save_png(output_dir / 'comparison.png', picture(result))
  return output_dir


def format_table(report: dict) -> str:
  """The per-scale means of a report as a text table (+- : mean spread over samples)."""
  heads = ('PSNR', 'SSIM', 'PSNR-Y', 'SSIM-Y', 'LR-cons x1e-5')
  digits = (2, 4, 2, 4, 2)
  lines = [f'{"scale":>6} {"images":>6} ' + ' '.join(f'{h:>17}' for h in heads)
           + f' {"bicubic PSNR":>13}']
  for entry in report['scales']:
    cells = [f'{entry["mean"][m + "_mean"]:.{d}f} +- {entry["mean"][m + "_std"]:.{d}f}'
             for m, d in zip(evaluator_lib.METRICS, digits)]
    lines.append(f'{entry["scale"]:>6g} {entry["num_images"]:>6} '
                 + ' '.join(f'{c:>17}' for c in cells) + f' {entry["bicubic"]["psnr"]:>13.2f}')
  return '\n'.join(lines)
