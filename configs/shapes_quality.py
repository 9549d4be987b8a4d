"""Issue 4's quality recipe, under the name the issue gives it: configs/shapes_latent.py (the
latent DiT on the shipped VAE, self-conditioning, token routing, 5,300 steps). Until 2026-12-04
this file held the pixel recipe, now configs/shapes_pixels.py.

  sora-jax encode-latents --config=configs/shapes_quality.py --config.data.latent_cache=runs/cache20k
  sora-jax train --config=configs/shapes_quality.py --workdir=runs/shapes_quality \
      --config.data.latent_cache=runs/cache20k
  python experiments/quality_curve.py --workdir=runs/shapes_quality --steps 5300

Its 45 minutes are the DiT's: the VAE it works in (assets/vae_tiny) was trained once, in ~54
minutes (`make vae`, configs/vae_tiny.py), and ships with the repository.
"""

from configs import shapes_latent


def get_config():
  return shapes_latent.get_config()
