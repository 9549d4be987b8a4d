"""A tiny trained VAE, shared by the latent-space tests."""

import pytest

from sora_jax.train import loop


def vae_config(config):
  """`config` (tests.conftest.tiny_config) turned into a tiny VAE run of 30 steps."""
  config.task = "vae"
  config.vae.latent_channels = 4
  config.vae.factors, config.vae.widths = (4, 4, 4), (8, 16, 16)
  config.vae.stats_batches = 2
  config.train.steps, config.train.lr = 30, 3e-3
  config.train.log_every, config.train.checkpoint_every = 10, 30
  return config


def latent_dit(config, vae_workdir):
  """`config` turned into a DiT in the latent space of the tiny VAE in `vae_workdir`: latents
  2 x 4 x 4 x 4, patched (1, 2, 2)."""
  config.model.vae_workdir = str(vae_workdir)
  config.model.channels, config.model.patch = 4, (1, 2, 2)
  return config


@pytest.fixture(scope="session")
def vae_workdir(tmp_path_factory, data_dir):
  from tests.conftest import tiny_config
  workdir = tmp_path_factory.mktemp("vae")
  loop.train(vae_config(tiny_config(data_dir)), str(workdir), progress=False)
  return workdir
