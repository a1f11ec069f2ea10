r"""Distilled students against their teacher and bicubic, on photographs none trained on.

The images and crops of `bench_heldout.py` (the demo's two validation photos and scikit-image's
other photographs), at x2, x3, x4 and x3.2 (LR 30 -> HR 96): each 96x96 HR crop's MATLAB-bicubic
downsample, rounded to 8 bits, is the input. Methods, all projected onto the LR input:
  teacher        the teacher config's sampler (the demo's: DDIM eta 1, 10 steps, mean of 8);
  NAME/teacher   the solver NAME was distilled from (its workdir's config.json: distill.teacher_*),
                 on the trailing grid, one sample;
  NAME/k         student NAME in k network evaluations, for k in --steps (`student.run`);
  bicubic        MATLAB imresize of the same LR.
Metrics on the 8-bit images (RGB PSNR/SSIM with ceil(scale) pixels cropped, LR consistency).
Time per image: the median of `--repeats` calls on all images of a scale (compiled beforehand,
called in rounds of one call per method), divided by their number.

  python benchmarks/bench_distill.py --teacher runs/demo/checkpoints \
      --student student=runs/demo_distill/checkpoints [--student NAME=WORKDIR/checkpoints ...] \
      [--teacher_config configs/demo.py] [--steps 1,2,3,4]

Prints one JSON object: per scale and method the mean metrics and seconds per image, and rows.
"""
import argparse
import json
import pathlib
import sys
import time

import jax
import ml_collections
import numpy as np

from idm_jax import host_memory
from idm_jax import mesh as mesh_lib
from idm_jax.inference import sampler as inference_sampler
from idm_jax.config import diffusion as diffusion_config
from idm_jax.config import loading
from idm_jax.data import image_io
from idm_jax.data import imresize
from idm_jax.diffusion import sampling
from idm_jax.evaluation import metrics
from idm_jax.scale import output_scale, scale_to_p

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import bench_heldout  # pylint: disable=g-import-not-at-top,wrong-import-position

LR_SIDES = {'x2': 48, 'x3': 32, 'x4': 24, 'x3.2': 30}


def _methods(teacher_config, students, steps):
  """name -> (which model, sampler config); students: name -> its experiment config."""
  out = {'teacher': ('teacher', diffusion_config.resolve_sampler(teacher_config))}
  for name, config in students.items():
    d = config.distill
    solver = diffusion_config.resolve_sampler(teacher_config)
    solver.update(name=d.teacher_sampler, steps=d.teacher_steps, spacing='trailing',
                  eta=d.teacher_eta, mean_of=1)
    out[f'{name}/teacher'] = ('teacher', solver)
    for k in steps:
      sampler = diffusion_config.resolve_sampler(config)
      sampler.update(steps=k, mean_of=1)
      out[f'{name}/{k}'] = (name, sampler)
  return out


def _student(spec: str) -> tuple[str, pathlib.Path, ml_collections.ConfigDict]:
  """NAME=CHECKPOINT_DIR -> (name, directory, the run's config from WORKDIR/config.json)."""
  name, _, directory = spec.partition('=')
  directory = pathlib.Path(directory)
  config = ml_collections.ConfigDict(json.loads((directory.parent / 'config.json').read_text()))
  return name, directory, config


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--teacher', required=True)
  parser.add_argument('--student', action='append', required=True, help='NAME=CHECKPOINT_DIR')
  parser.add_argument('--teacher_config', default='configs/demo.py')
  parser.add_argument('--scales', default=','.join(LR_SIDES), help='of ' + ','.join(LR_SIDES))
  parser.add_argument('--steps', default='1,2,3,4', help="the students' network evaluations")
  parser.add_argument('--repeats', type=int, default=5,
                      help='rounds of timed calls (one per method) per scale')
  args = parser.parse_args()
  host_memory.keep_freed_memory()
  teacher_config = loading.load(args.teacher_config)
  device = mesh_lib.replicated(mesh_lib.make_mesh(teacher_config.mesh))
  models = {'teacher': inference_sampler.load_model(teacher_config.model, args.teacher,
                                                  sharding=device,
                                                  sampler_name=teacher_config.sampler.name)[0]}
  students = {}
  for spec in args.student:
    name, directory, config = _student(spec)
    students[name] = config
    models[name] = inference_sampler.load_model(teacher_config.model, directory, sharding=device,
                                              sampler_name='distilled')[0]
  methods = _methods(teacher_config, students, [int(k) for k in args.steps.split(',')])
  hrs = {name: bench_heldout._hr(name) for name in bench_heldout.IMAGES}  # pylint: disable=protected-access
  rows, means = [], {}
  for label in args.scales.split(','):
    side = LR_SIDES[label]
    lrs = {n: imresize.imresize(hr, output_hw=(side, side)) for n, hr in hrs.items()}
    lr = np.stack([image_io.to_model_range(x) for x in lrs.values()])
    out_hw = (96, 96)
    scale = output_scale((side, side), out_hw)
    p = np.full((len(lr),), scale_to_p(scale, teacher_config.model.max_scale), np.float32)
    crop = metrics.crop_border_for_scale(scale)
    compiled = {method: sampling.compile_sample(models[which], lr, out_hw, p, sampler,
                                                teacher_config.diffusion)
                for method, (which, sampler) in methods.items()}
    outputs, times = {}, {method: [] for method in methods}
    for _ in range(args.repeats):  # Rounds of one call each, so drifts in speed hit all alike.
      for method, program in compiled.items():
        start = time.perf_counter()
        outputs[method] = np.asarray(program.run(lr, p, jax.random.key(0)))
        times[method].append(time.perf_counter() - start)
    seconds = {method: float(np.median(t)) / len(lr) for method, t in times.items()}
    for method, value in seconds.items():
      print(f'{label} {method}: {value:.3f} s per image', file=sys.stderr)
    lr8 = {n: image_io.to_model_range(x) for n, x in lrs.items()}
    for i, name in enumerate(hrs):
      hr = image_io.to_model_range(hrs[name])
      results = {m: np.clip(outputs[m][i], -1, 1) for m in methods}
      results['bicubic'] = np.clip(imresize.imresize(lr8[name], output_hw=out_hw), -1, 1)
      for method, sr in results.items():
        rows.append({'scale': label, 'image': name, 'method': method,
                     **metrics.image_metrics(sr, hr, lr8[name], crop_border=crop)})
    means[label] = {}
    for method in [*methods, 'bicubic']:
      group = [r for r in rows if r['scale'] == label and r['method'] == method]
      means[label][method] = {k: round(float(np.mean([r[k] for r in group])), 4)
                              for k in ('psnr', 'ssim', 'lr_consistency')}
      if method in seconds:
        means[label][method]['seconds_per_image'] = round(seconds[method], 4)
  print(json.dumps({'teacher': args.teacher, 'students': args.student,
                    'images': list(hrs), 'means': means, 'rows': rows}, indent=1))


if __name__ == '__main__':
  main()
