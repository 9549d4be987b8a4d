import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from sora_jax.models import vae

FT = 4


def tiny_cfg(**overrides):
  return ml_collections.ConfigDict(dict(dict(
      channels=3, latent_channels=4, factors=(FT, 4, 4), widths=(8, 16, 16), blocks=1,
      dtype="float32", param_dtype="float32"), **overrides))


def random_model(seed=0, **overrides):
  """A tiny VAE with random values in every parameter, zero-initialised ones included.

  Random everywhere so the causality tests can fail; filled from NumPy because compiling JAX's
  per-parameter initialisers takes ~15 s on 2 CPU cores.
  """
  graphdef, state = nnx.split(nnx.eval_shape(
      lambda: vae.VideoVAE(tiny_cfg(**overrides), rngs=nnx.Rngs(0))))
  rng = np.random.default_rng(seed)

  def fill(x):  # kernels N(0, 1 / fan_in); biases and norm scales around 0.5
    std = 1 / np.sqrt(np.prod(x.shape[:-1])) if x.ndim > 1 else 0.2
    return jnp.asarray(rng.normal(0.5 * (x.ndim == 1), std, x.shape), x.dtype)

  return nnx.merge(graphdef, jax.tree.map(fill, state))


STEM = dict(stem=(4, 4, 4), widths=(16,), head_hidden=32)  # patchify 4x4x4 first; one level


# and 3x3 convs at full resolution after the decoder (per frame: causal and chunkable as is)
PIXEL_HEAD = dict(STEM, pixel_head=8)


@pytest.fixture(scope="module", params=[{}, STEM, PIXEL_HEAD],
                ids=["levels", "stem", "stem+pixel_head"])
def model(request):
  return random_model(**request.param)


def video(frames, batch=1, seed=1, size=16):
  return jax.random.uniform(jax.random.key(seed), (batch, frames, size, size, 3), minval=-1.0)


encode = nnx.jit(lambda m, x: m.encode(x))
decode = nnx.jit(lambda m, z: m.decode(z))


def test_shapes_image_and_video(model):
  for k in (0, 1, 2):  # 1 frame (an image), 5 and 9 frames
    x = jax.ShapeDtypeStruct((2, 1 + k * FT, 16, 16, 3), jnp.float32)
    mean, logvar = jax.eval_shape(model.encode, x)
    assert mean.shape == logvar.shape == (2, 1 + k, 4, 4, 4)
    rec = jax.eval_shape(model.decode, mean)
    assert rec.shape == x.shape and rec.dtype == jnp.float32
  mean, _ = encode(model, video(1))  # an image runs for real too
  assert decode(model, mean).shape == (1, 1, 16, 16, 3)
  assert vae.latent_frames(1, FT) == 1 and vae.latent_frames(9, FT) == 3
  assert vae.latent_frames(10, FT) == 4
  per_level = nnx.eval_shape(lambda: vae.VideoVAE(tiny_cfg(blocks=(0, 1, 2)), rngs=nnx.Rngs(0)))
  assert len(per_level.encoder.levels[0]) == 1 and len(per_level.decoder.levels[0]) == 3


def test_encoder_is_causal(model):
  """Latent frame j sees input frames <= 4j: changing frame 5 leaves latents 0 and 1 alone."""
  x = video(9)
  mean, logvar = encode(model, jnp.concatenate([x, x.at[:, 5].add(1.0)]))
  for out in (mean, logvar):
    np.testing.assert_array_equal(out[0, :2], out[1, :2])
    assert np.abs(out[0, 2] - out[1, 2]).max() > 1e-3


def test_decoder_is_causal(model):
  """Latent frame j decodes to frames 1 + (j - 1) * 4 .. 4j: earlier frames do not see it."""
  z = jax.random.normal(jax.random.key(2), (1, 4, 4, 4, 4))
  rec = decode(model, jnp.concatenate([z, z.at[:, 2].add(1.0)]))  # [2, 13, 16, 16, 3]
  first = 1 + (2 - 1) * FT
  np.testing.assert_array_equal(rec[0, :first], rec[1, :first])
  assert np.abs(rec[0, first:] - rec[1, first:]).min(axis=(1, 2, 3)).max() > 0
  assert np.abs(rec[0, first] - rec[1, first]).max() > 1e-3


@pytest.mark.parametrize("chunk", [1, 2])
def test_chunked_matches_whole_clip(model, chunk):
  x = video(1 + FT * 3)  # chunk 2: frame 0, one scanned chunk of 8 frames, a last one of 4
  mean, logvar = encode(model, x)
  mean_c, logvar_c = nnx.jit(lambda m, x: m.encode_chunked(x, chunk))(model, x)
  np.testing.assert_allclose(mean_c, mean, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(logvar_c, logvar, rtol=1e-5, atol=1e-5)
  rec = decode(model, mean)
  rec_c = nnx.jit(lambda m, z: m.decode_chunked(z, chunk))(model, mean)
  assert rec_c.shape == x.shape
  np.testing.assert_allclose(rec_c, rec, rtol=1e-5, atol=1e-5)


def test_bad_frames_and_sizes_rejected(model):
  with pytest.raises(ValueError, match="16 frames.*17"):
    model.encode(video(16))
  with pytest.raises(ValueError, match="pad_frames"):
    vae.check_frames(16, FT)
  vae.check_frames(17, FT)
  x = video(16)
  padded, added = vae.pad_frames(x, FT)
  assert padded.shape[1] == 17 and added == 1
  np.testing.assert_array_equal(padded[:, 16], x[:, 15])
  np.testing.assert_array_equal(padded[:, :16], x)
  assert vae.pad_frames(video(5), FT)[1] == 0
  with pytest.raises(ValueError, match="multiples of 4"):
    model.encode(video(5, size=18))
  with pytest.raises(ValueError, match="chunk"):
    model.encode_chunked(video(5), 0)
  with pytest.raises(ValueError, match="latents have shape"):
    model.decode(jnp.zeros((1, 2, 4, 4, 3)))


@pytest.mark.parametrize("overrides, message", [
    (dict(factors=(4, 4, 2)), "fh == fw"),
    (dict(factors=(8, 4, 4)), "ft <= fh"),
    (dict(factors=(3, 4, 4)), "power of two"),
    (dict(widths=(8, 16)), "3 positive integers"),
    (dict(blocks=(1, 1)), "blocks"),
    (dict(latent_channels=0), "latent_channels"),
    (dict(stem=(4, 4, 2)), "stem"),
    (dict(stem=(4, 4, 4)), "1 positive integers"),  # the stem takes all of fh: one level
    (dict(dtype="floaty"), "not a dtype"),
])
def test_bad_config_rejected(overrides, message):
  with pytest.raises(ValueError, match=message):
    vae.VideoVAE(tiny_cfg(**overrides), rngs=nnx.Rngs(0))


def test_kl_divergence():
  zeros = np.zeros((2, 3, 2, 2, 4), np.float32)
  np.testing.assert_allclose(vae.kl_divergence(zeros, zeros), [0.0, 0.0], atol=1e-7)
  rng = np.random.default_rng(0)
  mean, logvar = rng.normal(size=(2, 2, 3, 2, 2, 4))
  expected = (0.5 * (mean ** 2 + np.exp(logvar) - 1.0 - logvar)).reshape(2, -1).mean(-1)
  np.testing.assert_allclose(
      vae.kl_divergence(mean.astype(np.float32), logvar.astype(np.float32)), expected, rtol=1e-5)


def test_jitted_forward_and_finite_gradients():
  model = random_model(seed=1)
  x = video(5, batch=2)

  @nnx.jit
  def step(model, x, key):
    def loss_fn(model):
      rec, mean, logvar = model(x, key)
      return jnp.mean(jnp.square(rec - x)) + 1e-3 * vae.kl_divergence(mean, logvar).mean()
    return nnx.value_and_grad(loss_fn)(model)

  loss, grads = step(model, x, jax.random.key(3))
  assert np.isfinite(loss)
  leaves = jax.tree.leaves(grads)
  assert leaves and all(np.isfinite(g).all() for g in leaves)
  assert any(np.abs(g).max() > 0 for g in leaves)
