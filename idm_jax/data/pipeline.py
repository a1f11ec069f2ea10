"""The training input pipeline (one host's rows of each global batch, by step) and the fixed
validation set."""
from collections.abc import Iterator, Sequence

from absl import flags
import grain
import ml_collections
import numpy as np

from idm_jax.config import data as config_lib
from idm_jax.data import bad_data
from idm_jax.data import buckets
from idm_jax.data import image_io
from idm_jax.data import imresize as imresize_lib
from idm_jax.data import pairs
from idm_jax.data import batch_rows
from idm_jax.data import sources

# Replacement draws for one batch slot before giving up on the data.
_MAX_ATTEMPTS = 64
# End of the (unbounded) step range handed to grain.
_LAST_STEP = 2**62


_SKIPPABLE = (image_io.UnreadableImageError, pairs.ImageTooSmallError)


def _skip_entry(source, index: int, error: Exception) -> tuple[str, str, str]:
  """(name, reason, message) of a skipped record for the BadDataTracker."""
  reason = 'too_small' if isinstance(error, pairs.ImageTooSmallError) else 'unreadable'
  return source.name(index), reason, str(error)


def _read_pair(source, rng: np.random.Generator, index: int, pair_kwargs: dict):
  """(hr, lr, None) for a usable record, else (None, None, skip entry)."""
  try:
    return (*pairs.train_pair(source[index], rng, **pair_kwargs), None)
  except _SKIPPABLE as e:
    return None, None, _skip_entry(source, index, e)


class _BatchFn:
  """step -> this host's rows of the global batch; picklable, so grain workers run it.

  Every slot takes a max_hr_size crop (LR from it, or the official LR); the crops are then resized
  together, in float, to the step's HR side with the MATLAB bicubic (the official trainer uses
  torchvision's bicubic here).
  """

  def __init__(self, source, sampler: batch_rows.GlobalSampler,
               data_config: ml_collections.ConfigDict, seed: int, rows: range):
    self._source = source
    self._sampler = sampler
    self._seed = seed
    self._rows = rows
    self._lr_size = data_config.lr_size
    self._max_hr_size = data_config.max_hr_size
    self._hr_sizes = buckets.hr_sizes(data_config)
    self._pair_kwargs = dict(
        lr_size=data_config.lr_size, hr_size=data_config.max_hr_size, lr_scale=source.lr_scale,
        degradation=data_config.degradation, pad_small=data_config.pad_small,
        hflip=data_config.hflip, vflip=data_config.vflip, rot90=data_config.rot90)

  def __call__(self, step: int) -> dict:
    step = int(step)
    hr_size = buckets.draw_hr_size(batch_rows.step_rng(self._seed, step), self._hr_sizes,
                                   self._lr_size, self._max_hr_size)
    hrs, lrs, skipped = [], [], []
    for slot in self._rows:
      for attempt in range(_MAX_ATTEMPTS):
        index = self._sampler.record(step, slot, attempt)
        rng = self._sampler.slot_rng(step, slot, attempt)
        hr, lr, problem = _read_pair(self._source, rng, index, self._pair_kwargs)
        if problem is None:
          break
        skipped.append(problem)
      else:
        raise bad_data.BadDataError(
            f'No usable image for step {step} after {_MAX_ATTEMPTS} draws; last: {skipped[-3:]}.')
      hrs.append(hr)
      lrs.append(lr)
    hr = np.stack(hrs).astype(np.float32)
    if hr_size != self._max_hr_size:
      hr = imresize_lib.imresize(hr, output_hw=(hr_size, hr_size))
    p = buckets.scale_input(hr_size, self._lr_size, self._max_hr_size)
    return {
        'step': step,
        'lr': image_io.to_model_range(np.stack(lrs)),
        'hr': np.clip(image_io.to_model_range(hr), -1, 1),
        'p': np.full((len(self._rows),), p, np.float32),
        'skipped': skipped,
    }


class TrainPipeline:
  """Rows `rows` of every global batch: a pure function of (config, seed, step, row).

  Each batch is a dict of numpy arrays: `lr` (b, lr, lr, 3) and `hr` (b, s, s, 3) float32 in
  [-1, 1] with one side s from `hr_sizes` per step (the same on every host), and `p` (b,) float32,
  the network's scale input; b = len(rows). Row j of step k is the same whichever host builds it,
  so 1 host x 8 devices and 2 hosts x 4 train on the same global batches.
  """

  def __init__(self, data_config: ml_collections.ConfigDict, global_batch_size: int, seed: int,
               rows: range | None = None):
    config_lib.validate(data_config)
    if global_batch_size < 1:
      raise ValueError(f'The global batch must be positive, got {global_batch_size}.')
    rows = range(global_batch_size) if rows is None else rows
    if not rows or rows.step != 1 or rows.start < 0 or rows.stop > global_batch_size:
      raise ValueError(f'rows {rows} must be a non-empty contiguous part of the global batch '
                       f'range(0, {global_batch_size}).')
    if seed < 0:
      raise ValueError(f'seed must be >= 0, got {seed}.')
    source = sources.make_source(data_config, 'train')
    if source.lr_scale and data_config.max_hr_size != data_config.lr_size * source.lr_scale:
      raise ValueError(
          f'The official LR images are x{source.lr_scale}: set data.max_hr_size = data.lr_size * '
          f'{source.lr_scale} (now {data_config.max_hr_size} and {data_config.lr_size}).')
    self.local_batch_size = len(rows)
    self.hr_sizes = buckets.hr_sizes(data_config)
    self.num_records = len(source)
    self._config = data_config
    self._fn = _BatchFn(source, batch_rows.GlobalSampler(len(source), seed, global_batch_size),
                        data_config, seed, rows)
    self._tracker = bad_data.BadDataTracker(len(source), data_config.max_bad_fraction, 'training')

  @property
  def skipped_counts(self) -> dict[str, int]:
    """Distinct records this host skipped so far, by reason."""
    return self._tracker.counts

  def _finish(self, out: dict) -> dict:
    self._tracker.add(out['skipped'])
    # Plain copies: arrays from worker processes live in shared memory that grain frees with them.
    return {k: np.array(out[k]) for k in ('lr', 'hr', 'p')}

  def batch(self, step: int) -> dict:
    """This host's batch of `step`, built in the calling thread."""
    return self._finish(self._fn(step))

  def iterate(self, start_step: int = 0) -> Iterator[tuple[int, dict]]:
    """Yields (step, batch) from `start_step` on, built ahead by grain workers."""
    cfg = self._config
    ds = grain.MapDataset.range(start_step, _LAST_STEP).map(self._fn).to_iter_dataset(
        grain.ReadOptions(num_threads=cfg.num_threads, prefetch_buffer_size=cfg.prefetch))
    if cfg.num_workers:
      # grain 0.2.18 reads an absl flag when starting workers, which fails outside absl.app
      # (google/grain#1355, fixed upstream): parse the defaults.
      if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
      ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=cfg.num_workers,
                                                       per_worker_buffer_size=cfg.prefetch))
    it = iter(ds)
    try:
      for out in it:
        yield out['step'], self._finish(out)
    finally:
      if hasattr(it, 'close'):
        it.close()


def eval_pairs(data_config: ml_collections.ConfigDict, scales: Sequence[float],
               num_images: int) -> list[dict]:
  """The fixed validation set: one dict per image and scale.

  Each has `lr` (h, w, 3) and `hr` (H, W, 3) float32 in [-1, 1] with H = round(h * scale),
  `scale`, and a file-safe `name`. Images come in the dataset's order (the first `num_images`);
  the LR is the official one at its own scale, else the HR degraded by `data.degradation`.
  """
  config_lib.validate(data_config)
  source = sources.make_source(data_config, 'eval')
  n = min(len(source), num_images)
  tracker = bad_data.BadDataTracker(n, data_config.max_bad_fraction, 'validation')
  out, skipped = [], []
  for i in range(n):
    try:
      record = source[i]
      image_pairs = [pairs.eval_pair(
          record, scale, crop_size=data_config.eval.crop_size, lr_scale=source.lr_scale,
          degradation=data_config.degradation, pad_small=data_config.pad_small)
                     for scale in scales]
    except _SKIPPABLE as e:
      skipped.append(_skip_entry(source, i, e))
      continue
    for scale, (hr, lr) in zip(scales, image_pairs):
      out.append({'lr': image_io.to_model_range(lr), 'hr': image_io.to_model_range(hr),
                  'scale': float(scale), 'name': f'{source.key(i)}_x{scale:g}'})
  tracker.add(skipped)
  if not out:
    raise ValueError(f'The validation set of data.source={data_config.source!r} gave no pairs.')
  return out
