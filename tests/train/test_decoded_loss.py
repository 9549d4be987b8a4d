"""The pixel loss through the frozen decoder (train/decoded_loss.py) on a latent DiT."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sora_jax.models import latents
from sora_jax.train import decoded_loss, loop, metrics, step as step_lib
from tests.train.conftest import latent_dit


def test_lowest_noise_picks_the_least_noisy_clips():
  t = jnp.array([[0.5, 0.5], [0.1, 0.1], [0.9, 0.9], [0.2, 0.3]])
  assert sorted(np.asarray(decoded_loss.lowest_noise(t, 2)).tolist()) == [1, 3]
  assert sorted(np.asarray(decoded_loss.lowest_noise(t, 4)).tolist()) == [0, 1, 2, 3]


def test_decoded_error_compares_decoded_pixels_of_the_least_noisy_clips(vae_workdir):
  space, frozen = latents.load(str(vae_workdir))
  x0 = jax.random.normal(jax.random.key(0), (3, 2, 4, 4, 4))
  t = jnp.array([[0.9, 0.9], [0.1, 0.1], [0.5, 0.5]])
  assert float(decoded_loss.decoded_error(space, frozen, x0, x0, t, 1, 4)) == 0.0
  noisy_far = x0.at[0].add(1.0)  # clip 0 is the noisiest: not decoded
  assert float(decoded_loss.decoded_error(space, frozen, x0, noisy_far, t, 2, 4)) == 0.0
  x0_hat = x0 + 0.5 * jax.random.normal(jax.random.key(1), x0.shape)
  got = decoded_loss.decoded_error(space, frozen, x0, x0_hat, t, 2, 4)
  pick = jnp.array([1, 2])
  want = jnp.mean(jnp.square(space.decode(frozen, x0_hat[pick], 4)
                             - space.decode(frozen, x0[pick], 4)))
  np.testing.assert_allclose(got, want, rtol=1e-5)
  assert float(got) > 0
  grad = jax.grad(lambda z: decoded_loss.decoded_error(space, frozen, x0, z, t, 2, 4))(x0_hat)
  assert float(jnp.abs(grad[0]).max()) == 0.0 and float(jnp.abs(grad[1]).max()) > 0


def test_the_step_adds_the_weighted_decoded_error(vae_workdir, config, tmp_path):
  config = latent_dit(config, vae_workdir)
  config.diffusion.decoded_loss_weight, config.diffusion.decoded_loss_clips = 3.0, 2
  run = loop.setup(config, str(tmp_path / "run"))
  cfg = step_lib.StepConfig.from_config(run.config, latents.describe(str(vae_workdir)))
  assert cfg.decoded_weight == 3.0 and cfg.decoded_clips == 2 and cfg.frames == 4
  batch = loop.global_batch(run, next(run.data))
  key = jax.random.key(2)
  loss, aux = step_lib.diffusion_loss(run.state.params, run.graphdef, batch, key, run.frozen, cfg)
  plain = dataclasses.replace(cfg, decoded_weight=0.0)
  loss0, aux0 = step_lib.diffusion_loss(run.state.params, run.graphdef, batch, key, run.frozen,
                                        plain)
  assert "decoded_mse" not in aux0 and float(aux["decoded_mse"]) > 0
  np.testing.assert_allclose(loss, loss0 + 3.0 * aux["decoded_mse"], rtol=1e-5)
  run.ckpt.close()


def test_a_latent_cache_run_loads_the_decoder_and_logs_its_error(vae_workdir, config, tmp_path):
  from sora_jax.data import latent_cache
  config = latent_dit(config, vae_workdir)
  config.data.latent_cache = str(tmp_path / "cache")
  latent_cache.write(config, batch_size=8)
  assert loop.task_loss(config)[1] == {}  # without the decoded loss the VAE stays on disk
  config.diffusion.decoded_loss_weight = 1.0
  _, frozen = loop.task_loss(config)
  assert set(frozen) == {"params", "shift", "scale"}
  config.train.steps, config.train.log_every = 2, 1
  loop.train(config, str(tmp_path / "dit"), progress=False)
  rows = metrics.read_metrics(str(tmp_path / "dit"))
  assert [r["step"] for r in rows] == [1, 2] and all(r["decoded_mse"] > 0 for r in rows)


@pytest.mark.parametrize("key,value,match", [
    ("decoded_loss_weight", -1.0, "decoded_loss_weight=-1.0; must be >= 0"),
    ("decoded_loss_weight", float("nan"), "decoded_loss_weight=nan"),
    ("decoded_loss_clips", 0, "decoded_loss_clips=0; must be in"),
    ("decoded_loss_clips", 10_000, "decoded_loss_clips=10000; must be in")])
def test_bad_decoded_loss_settings_are_rejected(vae_workdir, config, key, value, match):
  config = latent_dit(config, vae_workdir)
  config.diffusion.decoded_loss_weight = 1.0
  config.diffusion[key] = value
  with pytest.raises(ValueError, match=match):
    loop.task_loss(config)


def test_a_pixel_dit_cannot_take_the_decoded_loss(config):
  config.diffusion.decoded_loss_weight = 1.0
  with pytest.raises(ValueError, match="needs a latent DiT"):
    loop.task_loss(config)
