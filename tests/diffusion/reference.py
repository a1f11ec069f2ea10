"""Plain Python-loop samplers written from the papers' formulas, to check the scan samplers.

Coefficients come from float64 numpy betas (not from `solvers`); the noise (x_T, then one draw
per step) uses the same per-example key splitting as `scan_loop`, so stochastic runs compare too.
"""
import jax.numpy as jnp
import numpy as np

from idm_jax.diffusion import scan_loop


def _step_noise(keys, shape):
  keys, step_keys = scan_loop.split_keys(keys)
  return keys, scan_loop.normal(step_keys, shape)


def sample(model, lr, out_hw, p, keys, betas, name, t_seq=None, eta=0.0, clip=True, sign=1.0):
  """Returns (x_t the network saw, predicted x0) of every step; the last x0 is the image.

  sign: multiplies every noise draw (-1: the antithetic twin of the same keys' path).
  """
  betas = np.asarray(betas, np.float64)
  abar = np.cumprod(1.0 - betas)
  abar_ext = lambda t: 1.0 if t < 0 else float(abar[t])  # Step -1 is the clean image.
  x = jnp.zeros((lr.shape[0], *out_hw, 3), jnp.float32)
  std = 1.0  # Of the noise added before the step: x_T ~ N(0, I) first.
  cond = model.condition(lr, out_hw, p)
  if name == 'ddpm':
    t_seq = np.arange(len(betas))[::-1]
  ts = [int(t) for t in t_seq]
  out, x0_prev, h_prev = [], None, None
  for i, t in enumerate(ts):
    keys, z = _step_noise(keys, x.shape[1:])
    x = x + std * sign * z
    t_next = ts[i + 1] if i + 1 < len(ts) else -1
    ac, an = abar_ext(t), abar_ext(t_next)
    eps = model.denoise(cond, x, jnp.full((x.shape[0],), np.sqrt(ac), jnp.float32))
    x0 = (x - np.sqrt(1 - ac) * eps) / np.sqrt(ac)
    if clip:
      x0 = jnp.clip(x0, -1.0, 1.0)
    out.append((x, x0))
    if name == 'ddpm':  # Ho et al. eq. 7: the mean and variance of q(x_{t-1} | x_t, x0).
      x = (np.sqrt(an) * betas[t] / (1 - ac) * x0
           + np.sqrt(1 - betas[t]) * (1 - an) / (1 - ac) * x)
      std = np.sqrt((1 - an) / (1 - ac) * betas[t])
    elif name == 'ddim':  # Song et al. eq. 12, eps re-derived from the (clipped) x0.
      std = eta * np.sqrt((1 - an) / (1 - ac) * (1 - ac / an))
      eps_hat = (x - np.sqrt(ac) * x0) / np.sqrt(1 - ac)
      x = np.sqrt(an) * x0 + np.sqrt(1 - an - std**2) * eps_hat
    elif name == 'dpm_solver++':  # Lu et al. 2022, Algorithm 2 (2M), last step to sigma = 0.
      std = 0.0
      if t_next < 0:
        x = x0
      else:
        lam = lambda a: 0.5 * np.log(a / (1 - a))
        h = lam(an) - lam(ac)
        d = x0
        if x0_prev is not None:
          r = h_prev / h
          d = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * x0_prev
        x = np.sqrt((1 - an) / (1 - ac)) * x - np.sqrt(an) * np.expm1(-h) * d
        h_prev = h
      x0_prev = x0
  np.testing.assert_allclose(x, out[-1][1], atol=1e-6)  # Every sampler ends on its x0.
  return out
