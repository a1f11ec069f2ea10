"""What an evaluation writes: metrics.json, metrics.csv, comparison.png and the sampled PNGs."""
import csv
import io
import json

import numpy as np
from etils import epath
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

from idm_jax import paths
from idm_jax.data import image_io
from idm_jax.evaluation import evaluator as evaluator_lib
from idm_jax.evaluation import metrics

_GAP = 2  # Pixels between the panels of the comparison picture.
HEADER = 14  # Pixels above the panels: the column titles.
CAPTION = 13  # Pixels under each row: the pair's name, each SR panel's PSNR, the HR size.
PANELS = ('LR (nearest)', 'bicubic', 'IDM (sample 0)', 'HR')


def _label(draw_on: Image.Image, xy: tuple[int, int], size: tuple[int, int], text: str) -> None:
  """`text` in a white box of `size` at `xy`, cut at the box (small panels, long names)."""
  box = Image.new('RGB', size, 'white')
  ImageDraw.Draw(box).text((1, 0), text, fill='black', font=ImageFont.load_default(size=10))
  draw_on.paste(box, xy)


def picture(result: evaluator_lib.Result) -> np.ndarray:
  """uint8 (H, W, 3) that reads without the README: column titles (LR (nearest), bicubic, IDM
  sample 0, HR), then per pair its four panels above a caption (the pair's name with its scale,
  the PSNR of the bicubic and IDM panels against the HR, the HR size); rows padded white."""
  # The bicubic PSNR as the report has it; sample 0's alone (the report keeps the mean).
  bicubic_psnr = {r['image']: r['bicubic']['psnr']
                  for entry in result.report['scales'] for r in entry['images']}
  rows = []
  for pair, bicubic, samples in zip(result.pairs, result.bicubic, result.samples):
    h, w = pair['hr'].shape[:2]
    lr = pair['lr']
    nearest = lr[(np.arange(h) * lr.shape[0] // h)][:, (np.arange(w) * lr.shape[1] // w)]
    crop = metrics.crop_border_for_scale(pair['scale'])
    psnr = (bicubic_psnr[pair['name']],
            float(metrics.psnr(samples[0], pair['hr'], crop_border=crop)))
    rows.append(([nearest, bicubic, samples[0], pair['hr']],
                 [pair['name'], *(f'{v:.2f} dB' for v in psnr), f'{w}x{h}']))
  width = max(sum(p.shape[1] for p in panels) + _GAP * (len(panels) - 1) for panels, _ in rows)
  height = HEADER + sum(panels[0].shape[0] + CAPTION + _GAP for panels, _ in rows) - _GAP
  canvas = Image.new('RGB', (width, height), 'white')
  x = 0
  for title, panel in zip(PANELS, rows[0][0]):
    _label(canvas, (x, 0), (panel.shape[1], HEADER), title)
    x += panel.shape[1] + _GAP
  y = HEADER
  for panels, captions in rows:
    x = 0
    for panel, caption in zip(panels, captions):
      canvas.paste(Image.fromarray(image_io.to_uint8(panel)), (x, y))
      _label(canvas, (x, y + panel.shape[0]), (panel.shape[1], CAPTION), caption)
      x += panel.shape[1] + _GAP
    y += panels[0].shape[0] + CAPTION + _GAP
  return np.asarray(canvas)


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
