"""Diffusion hyper-parameters: the fields `config.diffusion` and `config.sampler` hold."""
import ml_collections

from idm_jax.config.data import DEGRADATIONS

SAMPLERS = ('ddpm', 'ddim', 'dpm_solver++', 'distilled')
# sampler.consistency: no projection, or the degradation whose inverse the projection uses.
CONSISTENCY_METHODS = ('none', *DEGRADATIONS)


def default_diffusion_config() -> ml_collections.ConfigDict:
  """The official face schedule (`beta_schedule` of configs/ffhq_liifsr3_scaler_16_128.json)."""
  c = ml_collections.ConfigDict()
  c.schedule = 'linear'  # 'linear' | 'quad' | 'cosine' | 'warmup10' | 'warmup50'.
  c.num_timesteps = 2000
  c.linear_start = 1e-6
  c.linear_end = 1e-2
  c.cosine_s = 8e-3  # Only read by 'cosine'.
  c.loss = 'l1'  # 'l1' (official) | 'l2', on the predicted noise.
  return c


def default_sampler_config() -> ml_collections.ConfigDict:
  """A 20-step DPM-Solver++(2M) sampler, tiled past 256x256 outputs."""
  c = ml_collections.ConfigDict()
  # 'ddpm' (all T steps) | 'ddim' | 'dpm_solver++' (2M, data prediction) | 'distilled' (a student
  # of `config.distill`: a blind estimate, then the mean of steps - 1 re-noised readings of it).
  c.name = 'dpm_solver++'
  c.steps = 20  # Network evaluations; 'ddpm' always takes num_timesteps.
  # 'leading': t_i = floor(i * T / steps), the official DDIM grid (ends at t = 0);
  # 'trailing': t_i = T - 1 - floor(i * T / steps) (starts at t = T - 1). Not read by 'distilled'.
  c.spacing = 'leading'
  c.eta = 0.0  # DDIM only: 0 deterministic, 1 the DDPM posterior variance.
  # Project every step's x0 and the result onto the images whose degradation is the LR input:
  # 'auto' = the training data's (data.degradation) | 'none' | 'matlab_bicubic' | 'pil_bicubic'.
  c.consistency = 'auto'
  c.clip_x0 = True  # Clip the predicted x0 to [-1, 1] at every step (the official DDPM does).
  # k > 1: each output is the mean of k samples (k times the work): an estimate of the posterior
  # mean, which trades detail for PSNR (less noise, the least squared error); 1: one sample.
  c.mean_of = 1
  # With mean_of = 2m: m antithetic pairs, the second of a pair run on the negated noise of the
  # first (a variance reduction of the mean: noise the network answers nearly linearly, such as
  # invented texture on flat areas, cancels within a pair; each sample keeps its distribution).
  c.antithetic = False
  c.trajectory_every = 0  # k > 0: `sample` also returns x_t and the predicted x0 every k steps.
  # Tiling: outputs larger than `tile_size` on either side are sampled as overlapping tiles.
  c.tile_size = 256  # HR pixels per tile side; 0: never tile.
  c.tile_overlap = 32  # HR pixels shared by neighbouring tiles (the blending ramp).
  c.tile_multiple = 1  # Tile sides are multiples of this (the IDM U-Net takes any size).
  # True: condition every tile once and keep it (faster; memory grows with the output, ~20 MiB
  # per 256x256 tile for the face model). False: recompute per tile and step (memory of one tile).
  c.tile_cache_condition = False
  return c


def resolve_sampler(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy of an experiment config's `sampler` with consistency 'auto' set to data.degradation."""
  sampler = config.sampler.copy_and_resolve_references()
  if sampler.consistency == 'auto':
    sampler.consistency = config.data.degradation
  return sampler
