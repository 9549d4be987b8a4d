"""The tiny pixel recipe (configs/tiny_pixels.py) in the latent space of the shipped VAE
(assets/vae_tiny): 5 x 8 x 8 x 16 latents, 80 tokens. The demo (configs/tiny_cpu.py) is the
quality recipe's levers on top of this.

  sora-jax train --config=configs/tiny_latent.py --workdir=runs/latent
"""

from configs import tiny_pixels, vae_tiny


def get_config():
  c = tiny_pixels.get_config()
  c.model.vae_workdir = vae_tiny.SHIPPED
  c.model.channels = 16  # the VAE's latent channels
  c.model.patch = (1, 2, 2)  # per latent frame: 5 x 4 x 4 = 80 tokens of 64 numbers
  c.diffusion.frame_noise_corr = 0.0
  return c
