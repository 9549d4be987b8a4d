"""The tiny pixel recipe (configs/tiny_pixels.py) in the latent space of configs/vae_tiny.py:
5 x 8 x 8 x 16 latents, 80 tokens.

  sora-jax train-vae --config=configs/vae_tiny.py --workdir=runs/vae_tiny
  sora-jax train --config=configs/tiny_latent.py --workdir=runs/latent
"""

from configs import tiny_pixels


def get_config():
  c = tiny_pixels.get_config()
  c.model.vae_workdir = "runs/vae_tiny"
  c.model.channels = 16  # the VAE's latent channels
  c.model.patch = (1, 2, 2)  # per latent frame: 5 x 4 x 4 = 80 tokens of 64 numbers
  c.diffusion.frame_noise_corr = 0.0
  return c
