"""Decoder tuning: a VAE run that starts from a trained VAE, learns only its decoder on latents
with a denoiser's errors, keeps the latent space, and decodes a latent DiT's samples. And its
sibling, a denoising fine-tune, where the encoder learns through those errors too."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sora_jax.models import latents
from sora_jax.sample import pipeline
from sora_jax.train import latent_errors, loop, restore, vae_loss
from tests.conftest import tiny_config
from tests.train.conftest import latent_dit, vae_config


def tune_config(data_dir, source):
  config = vae_config(tiny_config(data_dir))
  config.vae.init_from, config.vae.train_parts = str(source), "decoder"
  config.vae.latent_blur, config.vae.latent_shrink = 0.6, 0.3
  config.vae.latent_noise, config.vae.latent_clean_prob = 0.1, 0.25
  config.train.steps, config.train.checkpoint_every = 6, 6
  return config


@pytest.fixture(scope="module")
def tuned_workdir(vae_workdir, data_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("tuned")
  loop.train(tune_config(data_dir, vae_workdir), str(workdir), progress=False)
  return workdir


def _leaves(params, part):
  return jax.tree.leaves(params[part])


def test_tuning_moves_the_decoder_alone_and_keeps_the_latent_space(vae_workdir, tuned_workdir):
  source = restore.load_trained(str(vae_workdir), task="vae")
  tuned = restore.load_trained(str(tuned_workdir), task="vae")
  for a, b in zip(_leaves(source.params, "encoder"), _leaves(tuned.params, "encoder"),
                  strict=True):
    np.testing.assert_array_equal(a, b)  # weight decay included: not one bit moved
  moved = [not np.array_equal(a, b) for a, b in
           zip(_leaves(source.params, "decoder"), _leaves(tuned.params, "decoder"), strict=True)]
  assert all(moved), moved
  ours, theirs = latents.stats_of(str(vae_workdir)), latents.stats_of(str(tuned_workdir))
  assert theirs["step"] == 6
  assert (ours["shift"], ours["scale"]) == (theirs["shift"], theirs["scale"])


def test_a_latent_dit_samples_through_a_tuned_decoder_with_the_same_stats(
    vae_workdir, tuned_workdir, config, tmp_path):
  config = latent_dit(config, vae_workdir)
  config.train.steps = 2
  loop.train(config, str(tmp_path / "dit"), progress=False)
  gen = pipeline.load(str(tmp_path / "dit"), vae_workdir=str(tuned_workdir))
  tuned = restore.load_trained(str(tuned_workdir), task="vae")
  for a, b in zip(_leaves(gen.frozen["params"], "decoder"), _leaves(tuned.params, "decoder"),
                  strict=True):
    np.testing.assert_array_equal(a, b)
  assert pipeline.generate(gen, ["a red circle moves left"], steps=2).shape == (1, 4, 16, 16, 3)
  other = str(tmp_path / "other")  # an export whose latent units differ in one channel
  restore.export(str(tuned_workdir), other)
  stats = json.load(open(f"{other}/{latents.STATS_FILE}"))
  stats["scale"][0] *= 2
  json.dump(stats, open(f"{other}/{latents.STATS_FILE}", "w"))
  with pytest.raises(ValueError, match="other latent stats"):
    pipeline.load(str(tmp_path / "dit"), vae_workdir=other)
  config.model.vae_workdir, config.model.channels, config.model.patch = "", 3, (2, 8, 8)
  loop.train(config, str(tmp_path / "pixels"), progress=False)
  with pytest.raises(ValueError, match="holds a pixel DiT"):
    pipeline.load(str(tmp_path / "pixels"), vae_workdir=str(tuned_workdir))


def test_tuning_needs_a_source_that_fits(vae_workdir, data_dir, tmp_path):
  config = tune_config(data_dir, vae_workdir)
  config.vae.init_from = ""
  with pytest.raises(ValueError, match="set vae.init_from"):
    vae_loss.VaeLossConfig.from_config(config)
  config = tune_config(data_dir, vae_workdir)
  config.vae.widths = (8, 16, 32)
  with pytest.raises(ValueError, match="do not fit"):
    loop.setup(config, str(tmp_path / "wide"))
  config = tune_config(data_dir, vae_workdir)
  config.vae.latent_blur = 1.5
  with pytest.raises(ValueError, match="latent_blur=1.5"):
    vae_loss.VaeLossConfig.from_config(config)
  config.vae.latent_blur, config.vae.train_parts = 0.5, "encoder"
  with pytest.raises(ValueError, match="train_parts='encoder'"):
    loop.setup(config, str(tmp_path / "parts"))


def test_neighbourhood_mean_matches_a_hand_written_loop():
  z = np.random.default_rng(0).standard_normal((2, 3, 4, 5, 2)).astype(np.float32)
  want = np.zeros_like(z)
  for i in range(4):
    for j in range(5):
      rows = [min(max(i + di, 0), 3) for di in (-1, 0, 1)]
      cols = [min(max(j + dj, 0), 4) for dj in (-1, 0, 1)]
      want[:, :, i, j] = np.mean([z[:, :, r, c] for r in rows for c in cols], axis=0)
  np.testing.assert_allclose(latent_errors.neighbourhood_mean(jnp.asarray(z)), want, atol=1e-6)


def test_drawn_errors_are_per_clip_and_within_their_sizes():
  z = jax.random.normal(jax.random.key(0), (64, 2, 4, 4, 3))
  blur_only = latent_errors.LatentErrors(blur=0.6)
  out = np.asarray(latent_errors.draw(z, jax.random.key(1), blur_only))
  direction = np.asarray(latent_errors.neighbourhood_mean(z) - z).reshape(64, -1)
  offset = out.reshape(64, -1) - np.asarray(z).reshape(64, -1)
  weight = (offset * direction).sum(1) / (direction**2).sum(1)  # out = z + w (mean - z)
  np.testing.assert_allclose(offset, weight[:, None] * direction, atol=1e-5)
  assert weight.min() >= 0 and weight.max() <= 0.6 and weight.std() > 0.1
  mixed = latent_errors.LatentErrors(blur=0.5, shrink=0.3, noise=0.2, clean_prob=0.5)
  out = np.asarray(latent_errors.draw(z, jax.random.key(2), mixed))
  clean = np.all(out == np.asarray(z), axis=(1, 2, 3, 4))
  assert 16 < clean.sum() < 48  # about half the clips untouched, the others all moved
  assert latent_errors.LatentErrors(blur=0.5, clean_prob=1.0).active is False
  assert latent_errors.LatentErrors().active is False


def test_errors_on_a_training_encoder_scale_with_its_latents():
  """An encoder in training cannot beat the noise by growing its latents: errors are sized in
  the batch's units, so latents k z + c come back as k (z + error) + c. A frozen encoder's are
  sized in its source's stored units, so growing its latents would shrink the error."""
  z = jax.random.normal(jax.random.key(0), (8, 2, 4, 4, 3)) * jnp.array([1.0, 3.0, 0.2])
  frozen = {"shift": jnp.zeros(3), "scale": jnp.ones(3)}
  errors = latent_errors.LatentErrors(blur=0.3, noise=0.5, clean_prob=0.25)
  key = jax.random.key(1)
  for decoder_only, scales in ((False, True), (True, False)):
    cfg = vae_loss.VaeLossConfig(4, 0.0, 1.0, 1.0, decoder_only, errors)
    moved = vae_loss.with_errors(z, key, frozen, cfg)
    grown = vae_loss.with_errors(10.0 * z + 2.0, key, frozen, cfg)
    assert np.allclose(grown, 10.0 * moved + 2.0, atol=1e-4) is scales
  assert float(jnp.std(moved - z)) > 0.05


def test_a_denoising_fine_tune_moves_the_encoder_and_measures_new_stats(
    vae_workdir, data_dir, tmp_path):
  config = tune_config(data_dir, vae_workdir)
  config.vae.train_parts = "all"
  config.vae.latent_blur, config.vae.latent_shrink, config.vae.latent_noise = 0.0, 0.0, 0.5
  workdir = tmp_path / "denoising"
  loop.train(config, str(workdir), progress=False)
  source = restore.load_trained(str(vae_workdir), task="vae").params
  tuned = restore.load_trained(str(workdir), task="vae").params
  for part in ("encoder", "decoder"):
    assert any(not np.array_equal(a, b) for a, b in
               zip(_leaves(source, part), _leaves(tuned, part))), part
  assert latents.stats_of(str(workdir)) != latents.stats_of(str(vae_workdir))
  config.vae.init_from = ""  # a denoising VAE may also train from scratch: it needs no source
  vae_loss.VaeLossConfig.from_config(config)
