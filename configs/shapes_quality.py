"""Issue 4's quality recipe, under the name the issue gives it: configs/shapes_latent.py (the
latent DiT on the shipped VAE, self-conditioning, token routing) with bfloat16 matmul operands,
sized to the issue's 45 minutes on the machine it runs on. Until 2026-12-04 this file held the
pixel recipe, now configs/shapes_pixels.py.

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
  # cosine to end by minute 42 of `train` (train/budget.py); the time limit stops it,
  # checkpointed, at 44.5 if the machine slows after the fit (at 43 and 45 a run fitted 9,328
  # steps at 3.64 steps/s, ran 3.0-3.6 after, and was stopped at 9,076, the command taking 45:05:
  # experiments/STUDIES.md, "Training sized to the machine").
  # bfloat16 matmul operands, float32 accumulation (models/precision.py): 0.169-0.179 s a
  # step against 0.287-0.292 in float32 (experiments/step_time.py, alternating rounds, 2026-12-05),
  # so the same minutes buy 1.6-1.7x the steps.
  # A fresh clone fitted 14,435 steps at 5.76 steps/s (9,130 in float32 the session before) and
  # met every line of the bar at seed 0 (README, "Issue 4's recipe: the bar met").
  c.model.matmul_dtype = "bfloat16"
  c.train.steps = 16_000  # a cap above what 42 minutes fit here
  c.train.fit_minutes = 42.0
  c.train.time_limit_minutes = 44.5
  return c
