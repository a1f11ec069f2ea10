r"""PSNR of `idm-jax upscale` against bicubic on photographs a checkpoint never trained on.

Each image's 96x96 centre crop is the HR; its MATLAB-bicubic downsample at x2, x3 and x4 is saved
as an 8-bit PNG and upscaled by the command line exactly as a user would (`idm-jax upscale`,
the config's sampler). PSNR/SSIM are measured on the written PNGs (RGB, `ceil(scale)` pixels
cropped), beside MATLAB-bicubic upsampling of the same LR file. The images: the embedded
validation photos (coffee, rocket) and scikit-image's other photographs, none of which the
embedded training split holds (grey ones as RGB).

  python benchmarks/bench_heldout.py --checkpoint runs/demo/checkpoints [--config configs/demo.py] \
      [--scales 2,3,4] [--config.sampler.mean_of=1 ...]

Prints one JSON object: per scale and image IDM and bicubic PSNR/SSIM, and their means.
"""
import argparse
import contextlib
import json
import pathlib
import sys
import tempfile

import numpy as np
from skimage import data as skdata

from idm_jax import host_memory
from idm_jax.cli import main as cli
from idm_jax.data import embedded
from idm_jax.data import image_io
from idm_jax.data import imresize
from idm_jax.evaluation import metrics

CROP = 96
SCALES = (2, 3, 4)
# Colour photos of the validation split, then scikit-image's grey photographs: none is trained on.
IMAGES = embedded.VALIDATION + ('camera', 'brick', 'grass', 'gravel', 'moon', 'coins', 'page',
                                'cell')


def _hr(name: str) -> np.ndarray:
  image = image_io.to_rgb_uint8(getattr(skdata, name)())
  top, left = (image.shape[0] - CROP) // 2, (image.shape[1] - CROP) // 2
  return image[top:top + CROP, left:left + CROP]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--checkpoint', required=True)
  parser.add_argument('--config', default='configs/demo.py')
  parser.add_argument('--scales', default=','.join(str(s) for s in SCALES),
                      help='integer scales, within the model\'s max_scale')
  args, overrides = parser.parse_known_args()  # --config.FIELD=value, for `idm-jax upscale`.
  assert not set(IMAGES) & set(embedded.TRAIN)
  host_memory.keep_freed_memory()
  scales = [int(s) for s in args.scales.split(',')]
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    for scale in scales:
      inputs, hrs = [], {}
      for name in IMAGES:
        hr = _hr(name)
        lr = imresize.imresize(hr, output_hw=(CROP // scale, CROP // scale))
        inputs.append(str(image_io.save_png(tmp / f'x{scale}' / f'{name}.png', lr)))
        hrs[name] = (hr, lr)
      with contextlib.redirect_stdout(sys.stderr):  # Its progress lines; stdout is the JSON.
        status = cli.run(['upscale', *inputs, '--checkpoint', args.checkpoint, '--config',
                          args.config, '--scale', str(scale), '--output', str(tmp / 'out'),
                          *overrides])
      if status:
        raise SystemExit(f'idm-jax upscale failed at x{scale}')
      for name in IMAGES:
        hr, lr = (image_io.to_model_range(x) for x in hrs[name])
        sr = image_io.to_model_range(image_io.load_rgb(tmp / 'out' / f'{name}_x{scale}.png'))
        bicubic = np.clip(imresize.imresize(lr, output_hw=hr.shape[:2]), -1, 1)
        crop = metrics.crop_border_for_scale(scale)
        rows.append({'scale': scale, 'image': name,
                     'idm_psnr': float(metrics.psnr(sr, hr, crop_border=crop)),
                     'bicubic_psnr': float(metrics.psnr(bicubic, hr, crop_border=crop)),
                     'idm_ssim': metrics.ssim(sr, hr, crop_border=crop),
                     'bicubic_ssim': metrics.ssim(bicubic, hr, crop_border=crop),
                     'idm_lr_consistency': metrics.lr_consistency(sr, lr)})
  means = {}
  for scale in scales:
    group = [r for r in rows if r['scale'] == scale]
    means[f'x{scale}'] = {k: round(float(np.mean([r[k] for r in group])), 4)
                          for k in group[0] if k not in ('scale', 'image')}
    means[f'x{scale}']['idm_wins'] = int(sum(r['idm_psnr'] >= r['bicubic_psnr'] for r in group))
  print(json.dumps({'checkpoint': args.checkpoint, 'config': args.config,
                    'overrides': overrides, 'images': list(IMAGES), 'means': means,
                    'rows': rows}, indent=1))


if __name__ == '__main__':
  main()
