"""The data config: every field the input pipeline reads, with its default, and its checks."""
import ml_collections


SOURCES = ('embedded', 'folder', 'tfds')
# How an LR image is made from its HR image (data/degradation.py implements each).
DEGRADATIONS = ('matlab_bicubic', 'pil_bicubic')


def default_data_config() -> ml_collections.ConfigDict:
  """Defaults: the embedded photos, 16 -> up to 128 (the official face setting)."""
  c = ml_collections.ConfigDict()
  c.source = 'embedded'  # 'embedded' (scikit-image photos, no download), 'folder' or 'tfds'.
  c.path = ''  # source='folder': training images (png, jpg, jpeg, webp, bmp; recursive).
  c.lr_path = ''  # source='folder': official LR images matched by stem ('0001x4.png'); '' = none.
  c.lr_scale = 0  # Integer scale of the official LR images; 0 = from the TFDS config ('_x4').

  c.tfds = ml_collections.ConfigDict()
  c.tfds.name = ''  # Catalogue name, e.g. 'div2k' or 'celeb_a_hq'.
  c.tfds.config = ''  # Builder config, e.g. 'bicubic_x4' or '128'; '' = the default one.
  c.tfds.split = 'train'  # Training split (TFDS split syntax, e.g. 'train[:90%]').
  c.tfds.image_key = 'auto'  # HR image feature; 'auto' = known datasets or the only Image feature.
  c.tfds.lr_key = 'auto'  # Official LR feature; 'auto' = known datasets (div2k: 'lr'); '' = none.
  c.tfds.data_dir = ''  # TFDS data_dir; '' = the TFDS default (~/tensorflow_datasets).
  c.tfds.manual_dir = ''  # Folder of manually downloaded files (celeb_a_hq needs one).
  c.tfds.download = True  # Download and prepare the dataset when it is not prepared yet.

  c.lr_size = 16  # LR crop side fed to the network.
  c.min_hr_size = 16  # Smallest HR target side (>= lr_size; lr_size means scale 1).
  c.max_hr_size = 128  # HR crop side = largest target (p = 1); lr_size * lr_scale with official LR.
  c.bucket_multiple = 8  # Target sides: multiples of this plus min and max; one compile each.
  c.degradation = 'matlab_bicubic'  # LR from HR: 'matlab_bicubic' (DIV2K) or 'pil_bicubic' (faces).
  c.hflip = True  # Random horizontal flip (official).
  c.vflip = False  # Random vertical flip.
  c.rot90 = False  # Random 90-degree rotation.
  c.pad_small = False  # Mirror-pad images smaller than the crop instead of skipping them.
  c.max_bad_fraction = 0.01  # Stop when more than this fraction of a shard is unreadable/too small.
  c.num_workers = 2  # Worker processes (grain mp_prefetch); 0 = threads of the main process.
  c.num_threads = 1  # Threads per process building batches (grain ReadOptions).
  c.prefetch = 4  # Batches buffered per process.

  c.eval = ml_collections.ConfigDict()
  c.eval.path = ''  # source='folder': validation images.
  c.eval.lr_path = ''  # source='folder': official validation LR images ('' = degrade the HR).
  c.eval.split = 'validation'  # source='tfds': validation split.
  c.eval.crop_size = 0  # HR center crop side; 0 = the full image.
  return c


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the field to fix when the config is inconsistent."""
  if config.source not in SOURCES:
    raise ValueError(f'data.source={config.source!r}: choose one of {SOURCES}.')
  if config.degradation not in DEGRADATIONS:
    raise ValueError(f'data.degradation={config.degradation!r}: choose one of {DEGRADATIONS}.')
  if not 1 <= config.lr_size <= config.min_hr_size <= config.max_hr_size:
    raise ValueError(f'Need 1 <= data.lr_size ({config.lr_size}) <= data.min_hr_size '
                     f'({config.min_hr_size}) <= data.max_hr_size ({config.max_hr_size}).')
  if config.max_hr_size == config.lr_size:
    raise ValueError('data.max_hr_size must exceed data.lr_size: p would be undefined.')
  if config.bucket_multiple < 1:
    raise ValueError(f'data.bucket_multiple={config.bucket_multiple} must be >= 1.')
  if not 0 <= config.max_bad_fraction <= 1:
    raise ValueError(f'data.max_bad_fraction={config.max_bad_fraction} must be in [0, 1].')
  if config.num_workers < 0 or config.num_threads < 0 or config.prefetch < 0:
    raise ValueError('data.num_workers, data.num_threads and data.prefetch must be >= 0.')
