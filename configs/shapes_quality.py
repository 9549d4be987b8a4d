"""Issue 4's quality recipe, under the name the issue gives it: configs/shapes_latent.py (the
latent DiT on the shipped VAE, self-conditioning, token routing), sized to the issue's 45 minutes
on the machine it runs on. Until 2026-12-04 this file held the pixel recipe, now
configs/shapes_pixels.py.

  sora-jax encode-latents --config=configs/shapes_quality.py --config.data.latent_cache=runs/cache20k
  sora-jax train --config=configs/shapes_quality.py --workdir=runs/shapes_quality \
      --config.data.latent_cache=runs/cache20k
  sora-jax eval --workdir=runs/shapes_quality --num_prompts 32 --seeds 2 --groups held_out

Its 45 minutes are the DiT's: the VAE it works in (assets/vae_tiny) was trained once, in ~54
minutes (`make vae`, configs/vae_tiny.py), and ships with the repository.
"""

from configs import shapes_latent


def get_config():
  c = shapes_latent.get_config()
  # shapes_latent's 5,300 steps took 36.7 minutes on 2026-12-04 and 24.5 on 2026-12-05 here: the
  # budget, not a step count, is the issue's. The run times its steps in the warmup and sizes the
  # cosine to end by minute 43 of `train` (train/budget.py), at most 10,800 steps (lg3's, which
  # met the bar at seed 0 unrouted at 7,200 and 10,800: README, "Where this is going"); the time
  # limit stops it, checkpointed, at 45 if the machine slows after the fit.
  c.train.steps = 10_800
  c.train.fit_minutes = 43.0
  c.train.time_limit_minutes = 45.0
  return c
