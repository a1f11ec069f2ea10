"""The network: any output size, one compile per shape, finite at init, scale-weight algebra."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from idm_jax.config import model as model_config
from idm_jax.models.idm import IDM, count_params
from idm_jax.models.implicit_upsampler import ImplicitUpsampler
from idm_jax.models.lr_conditioning import normalise_scale_weights
from idm_jax.scale import scale_to_p
from tests.tiny_model import tiny_model_config


def _rngs(seed: int) -> nnx.Rngs:
  # The 'rbg' generator compiles its per-shape initialiser kernels ~5x faster than threefry.
  return nnx.Rngs(jax.random.key(seed, impl='rbg'))


@pytest.fixture(scope='module')
def tiny():
  model = IDM(tiny_model_config(), rngs=_rngs(0))
  model.eval()
  graphdef, state = nnx.split(model)

  @jax.jit
  def forward(state, lr, y_t, gamma, p):
    return nnx.merge(graphdef, state)(lr, y_t, gamma, p)

  return model, state, forward


# (batch, LR size, output size): scale 1, x12, non-square, odd, non-integer, not a multiple of 4.
SHAPES = [(1, (8, 8), (8, 8)), (1, (6, 6), (72, 72)), (2, (10, 12), (37, 29)),
          (1, (8, 8), (13, 70)), (1, (5, 7), (36, 50)), (2, (9, 9), (21, 21))]


@pytest.mark.parametrize('batch,lr_hw,out_hw', SHAPES)
def test_any_output_size(tiny, batch, lr_hw, out_hw):
  _, state, forward = tiny
  rng = np.random.default_rng(0)
  lr = jnp.asarray(rng.uniform(-1, 1, (batch, *lr_hw, 3)), jnp.float32)
  y_t = jnp.asarray(rng.normal(size=(batch, *out_hw, 3)), jnp.float32)
  out = forward(state, lr, y_t, jnp.full((batch,), 0.7), jnp.full((batch,), 0.4))
  assert out.shape == (batch, *out_hw, 3)
  assert out.dtype == jnp.float32
  assert bool(jnp.all(jnp.isfinite(out)))
  assert float(jnp.std(out)) > 1e-3  # Not a degenerate constant map.


def test_one_compile_per_shape(tiny):
  model, state, _ = tiny
  graphdef = nnx.graphdef(model)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def forward(state, lr, y_t, gamma, p):
    return nnx.merge(graphdef, state)(lr, y_t, gamma, p)

  for seed in range(3):
    key = jax.random.key(seed)
    forward(state, jax.random.uniform(key, (1, 8, 8, 3)), jax.random.normal(key, (1, 20, 20, 3)),
            jnp.full((1,), 0.1 * seed), jnp.full((1,), 0.2 * seed)).block_until_ready()
  # A new shape traces again (and would raise above if the first shape had retraced).
  with pytest.raises(AssertionError):
    forward(state, jnp.zeros((1, 8, 8, 3)), jnp.zeros((1, 24, 24, 3)), jnp.ones(1), jnp.ones(1))


def test_condition_then_denoise_equals_full_forward(tiny):
  model, state, forward = tiny
  key = jax.random.key(3)
  lr = jax.random.uniform(key, (2, 8, 8, 3), minval=-1, maxval=1)
  y_t = jax.random.normal(key, (2, 19, 23, 3))
  gamma, p = jnp.array([0.2, 0.9]), jnp.array([0.1, 0.8])
  graphdef = nnx.graphdef(model)

  @jax.jit
  def two_stage(state, lr, y_t, gamma, p):
    model = nnx.merge(graphdef, state)
    return model.denoise(model.condition(lr, (19, 23), p), y_t, gamma)

  np.testing.assert_allclose(two_stage(state, lr, y_t, gamma, p),
                             forward(state, lr, y_t, gamma, p), atol=1e-5)


def test_per_example_scale_and_noise_level(tiny):
  """Each example of a batch uses its own p and gamma: batch == examples run one by one."""
  _, state, forward = tiny
  key = jax.random.key(4)
  lr = jax.random.uniform(key, (2, 8, 8, 3), minval=-1, maxval=1)
  y_t = jax.random.normal(key, (2, 16, 16, 3))
  gamma, p = jnp.array([0.3, 0.95]), jnp.array([0.0, 1.0])
  both = forward(state, lr, y_t, gamma, p)
  for i in range(2):
    one = forward(state, lr[i:i + 1], y_t[i:i + 1], gamma[i:i + 1], p[i:i + 1])
    np.testing.assert_allclose(both[i:i + 1], one, atol=1e-5)
  assert float(jnp.max(jnp.abs(both[0] - both[1]))) > 1e-3


def test_bfloat16_compute_tracks_float32():
  cfg = tiny_model_config()
  f32 = IDM(cfg, rngs=_rngs(1))
  cfg.compute_dtype = 'bfloat16'
  bf16 = IDM(cfg, rngs=_rngs(1))
  f32.eval(), bf16.eval()
  key = jax.random.key(5)
  lr = jax.random.uniform(key, (1, 8, 8, 3), minval=-1, maxval=1)
  y_t = jax.random.normal(key, (1, 16, 16, 3))
  call = nnx.jit(lambda model, *args: model(*args))
  a = call(f32, lr, y_t, jnp.array([0.5]), jnp.array([0.5]))
  b = call(bf16, lr, y_t, jnp.array([0.5]), jnp.array([0.5]))
  assert b.dtype == jnp.float32
  rel = float(jnp.linalg.norm(a - b) / jnp.linalg.norm(a))
  assert 0 < rel < 0.05


def test_output_smaller_than_input_is_refused(tiny):
  model, _, _ = tiny
  with pytest.raises(ValueError, match='smaller than the LR input'):
    model.condition(jnp.zeros((1, 8, 8, 3)), (6, 8), jnp.zeros(1))


def test_scale_weights_lie_on_the_unit_circle():
  s1 = jnp.array([[3.0, -1.0, 0.2]])
  s2 = jnp.array([[4.0, 1.0, 0.0]])
  w1, w2 = normalise_scale_weights(s1, s2)
  np.testing.assert_allclose(w1**2 + w2**2, 1.0, atol=1e-6)
  np.testing.assert_allclose(w1, [[0.6, -0.5**0.5, 1.0]], atol=1e-6)


def test_scale_to_p():
  np.testing.assert_allclose(scale_to_p([1.0, 8.0, 4.5], 8.0), [0.0, 1.0, 0.5])
  np.testing.assert_allclose(scale_to_p(2.5, 4.0), 0.5)  # Fixture case 1: 16 -> 40 at max x4.
  with pytest.raises(ValueError, match='below 1'):
    scale_to_p(0.5, 8.0)


def test_implicit_upsampler_is_exact_at_2x_with_identity_mlp():
  """Closed form: with an MLP that returns its feature input, 2x upsampling is nearest."""
  channels = 4
  up = ImplicitUpsampler(channels, (), rngs=nnx.Rngs(0))  # A single affine layer.
  kernel = np.zeros((channels + 2, channels), np.float32)
  kernel[:channels] = np.eye(channels)
  up.mlp[0].kernel[...] = jnp.asarray(kernel)
  x = jax.random.uniform(jax.random.key(0), (1, 3, 5, channels), minval=0.1, maxval=1.0)
  w1 = jnp.ones((1, channels))
  out = up(x, w1, jnp.zeros_like(x), (6, 10))
  mixed = np.asarray(x) * np.sqrt(2.0)  # Fused leaky ReLU of positive inputs, zero bias.
  np.testing.assert_allclose(out, mixed.repeat(2, axis=1).repeat(2, axis=2), rtol=1e-6)


def test_implicit_upsampler_options_build_and_run():
  x = jax.random.normal(jax.random.key(1), (2, 4, 6, 8))
  for kwargs in ({'feat_unfold': True}, {'local_ensemble': True}, {'cell_decode': True}):
    up = ImplicitUpsampler(8, (16,), 'relu', rngs=nnx.Rngs(0), **kwargs)
    out = up(x, jnp.ones((2, 8)), jnp.zeros_like(x), (9, 13))
    assert out.shape == (2, 9, 13, 8) and bool(jnp.all(jnp.isfinite(out)))


def test_local_ensemble_of_a_constant_field_is_that_constant():
  """The ensemble weights sum to one: a spatially constant input decodes to a constant."""
  up = ImplicitUpsampler(4, (), rngs=nnx.Rngs(0), local_ensemble=True)
  kernel = np.zeros((6, 4), np.float32)
  kernel[:4] = np.eye(4)
  up.mlp[0].kernel[...] = jnp.asarray(kernel)
  x = jnp.full((1, 5, 5, 4), 0.5)
  out = up(x, jnp.ones((1, 4)), jnp.zeros_like(x), (17, 11))
  np.testing.assert_allclose(out, 0.5 * np.sqrt(2.0), rtol=1e-5)


def test_face_config_parameter_count_matches_official():
  """Official face network: 116,590,885 parameters, minus the ones its forward never reads."""
  c = 64
  chans = [c * m for m in (1, 2, 4, 8, 8)]
  eq_conv = lambda i, o: i * o * 9 + o  # weight + bias (in the conv or its activation)
  unused = (eq_conv(512, 512) + eq_conv(512, 256)  # final_down1, final_down2
            + 1024 * 2048 + 2048 + eq_conv(512, 512)  # final_linear, final_styleconv
            + (66 * 256 + 256) + 3 * (256 * 256 + 256) + (256 * 3 + 3)  # top-level imnet MLP
            + 2 * (9 + 3)  # EDSR MeanShift x2
            + 2 * (2 * chans[0]) + eq_conv(c, chans[0])  # level-0 scale1/scale2/shift
            + eq_conv(chans[3], chans[4])  # last conv_body_down
            # per implicit layer: modulation EqualLinear(512, C), modulated weight, noise weight
            + sum(512 * ch + ch + 9 * ch * ch + 1 for ch in chans[1:]))
  model = nnx.eval_shape(lambda: IDM(model_config.default_model_config(), rngs=nnx.Rngs(0)))
  assert count_params(model) == 116_590_885 - unused == 99_801_670


def _liif_reference(x, w1, shift, bias, layers, activation, out_hw, feat_unfold, cell_decode):
  """The implicit layer decoded pixel by pixel in float64, from LIIF's definitions: mix, fused
  leaky ReLU, optional 3x3 unfolding (channel-major, as `F.unfold`), then at each output pixel
  centre the nearest latent cell's feature, the offset from that cell's centre in latent cells,
  and the cell size (2 / output size, in latent units), through the MLP."""
  x, w1, shift = (np.asarray(v, np.float64) for v in (x, w1, shift))
  mixed = x * w1[:, None, None, :] + shift + np.asarray(bias, np.float64)
  feat = np.where(mixed >= 0, mixed, 0.2 * mixed) * np.sqrt(2.0)
  b, h, w, c = feat.shape
  if feat_unfold:
    padded = np.pad(feat, ((0, 0), (1, 1), (1, 1), (0, 0)))
    taps = [padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)]
    feat = np.stack(taps, axis=-1).reshape(b, h, w, c * 9)
  out_h, out_w = out_hw
  out = np.zeros((b, out_h, out_w, layers[-1][0].shape[1]))
  for i in range(out_h):
    for j in range(out_w):
      y, x_ = -1 + (2 * i + 1) / out_h, -1 + (2 * j + 1) / out_w
      # Nearest cell centre (these sizes have no ties).
      row, col = int(np.floor((y + 1) * h / 2)), int(np.floor((x_ + 1) * w / 2))
      rel = [(y - (-1 + (2 * row + 1) / h)) * h, (x_ - (-1 + (2 * col + 1) / w)) * w]
      cell = [2 / out_h * h, 2 / out_w * w] if cell_decode else []
      hidden = np.concatenate([feat[:, row, col], np.broadcast_to(rel + cell, (b, len(rel + cell)))],
                              axis=-1)
      for k, (kernel, bias_k) in enumerate(layers):
        if k:
          hidden = np.maximum(hidden, 0) if activation == 'relu' else hidden
        hidden = hidden @ kernel + bias_k
      out[:, i, j] = hidden
  return out


@pytest.mark.parametrize('feat_unfold, cell_decode', [(True, True), (False, True), (True, False)])
def test_implicit_upsampler_matches_liif_pixel_by_pixel(feat_unfold, cell_decode):
  """Odd latent sizes to even output sizes: no pixel centre ties between two cells."""
  channels, out_hw = 4, (8, 14)
  up = ImplicitUpsampler(channels, (16,), 'relu', feat_unfold=feat_unfold,
                         cell_decode=cell_decode, rngs=nnx.Rngs(3))
  rng = np.random.default_rng(0)
  up.mix_bias.bias[...] = jnp.asarray(rng.normal(size=channels), jnp.float32)
  for layer in up.mlp:
    layer.bias[...] = jnp.asarray(rng.normal(size=layer.bias.shape), jnp.float32)
  x = jnp.asarray(rng.normal(size=(2, 3, 5, channels)), jnp.float32)
  w1 = jnp.asarray(rng.uniform(0.2, 1.0, (2, channels)), jnp.float32)
  shift = jnp.asarray(rng.normal(size=(2, 3, 5, channels)), jnp.float32)
  out = up(x, w1, shift, out_hw)
  layers = [(np.asarray(l.kernel[...], np.float64), np.asarray(l.bias[...], np.float64))
            for l in up.mlp]
  expected = _liif_reference(x, w1, shift, up.mix_bias.bias[...], layers, 'relu', out_hw,
                             feat_unfold, cell_decode)
  np.testing.assert_allclose(out, expected, rtol=2e-5, atol=2e-5)


def test_dropout_draws_its_masks_from_the_key_of_the_call():
  """The network holds parameters only; in training mode the same key gives the same masks and
  another key others; in eval mode no key is needed and none changes the output."""
  cfg = tiny_model_config()
  cfg.dropout = 0.5
  model = IDM(cfg, rngs=_rngs(1))
  graphdef, params = nnx.split(model, nnx.Param)  # Fails if anything but parameters remained.
  model.eval()
  eval_graphdef = nnx.split(model, nnx.Param)[0]
  lr = jax.random.uniform(jax.random.key(0), (1, 8, 8, 3), minval=-1, maxval=1)
  y = jax.random.normal(jax.random.key(1), (1, 16, 16, 3))
  gamma, p = jnp.array([0.5]), jnp.array([0.3])

  @functools.partial(jax.jit, static_argnums=1)
  def forward(key, train):
    net = nnx.merge(graphdef if train else eval_graphdef, params)
    return net(lr, y, gamma, p, rngs=nnx.Rngs(dropout=key))

  run = lambda seed, train: np.asarray(forward(jax.random.key(seed), train))
  np.testing.assert_array_equal(run(0, True), run(0, True))
  assert np.abs(run(0, True) - run(1, True)).max() > 1e-3
  np.testing.assert_array_equal(run(0, False), run(1, False))
  assert np.abs(run(0, True) - run(0, False)).max() > 1e-3
  with pytest.raises(ValueError, match='rngs'):
    nnx.merge(graphdef, params)(lr, y, gamma, p)
