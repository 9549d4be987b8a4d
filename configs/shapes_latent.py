"""The pixel recipe (configs/shapes_pixels.py) in the latent space of the shipped VAE
(assets/vae_tiny: configs/vae_tiny.py trained 4,000 steps), with token routing: issue 4's
recipe (configs/shapes_quality.py is this config).

  sora-jax encode-latents --config=configs/shapes_latent.py --config.data.latent_cache=runs/cache20k
  sora-jax train --config=configs/shapes_latent.py --workdir=runs/shapes_latent \
      --config.data.latent_cache=runs/cache20k

The VAE's decoder draws the shapes' corners (every attribute kept on 64 of 64 held-out clips), so
the DiT only has to put the right latent in the right place: 5 x 4 x 4 = 80 tokens of 2 x 2 x 16
numbers, where the pixel DiT draws 4 x 8 x 8 x 3 = 768-number patches. Without self-conditioning
it judged held-out shape 0.72 and direction 1.00 after 4,200 steps (35.6 min of DiT steps on a
faster hour; the pixel recipe: 0.48, 0.91 in 35.1 min). With it, the 4,200-step run (runs/sc1)
read shape 0.72 -> 0.80 at 4,200 steps (47.4 min on 2026-12-02) and 0.78 with direction 0.95 at
its step 3,600 (40.9 min), hence 3,600 steps until token routing (README, "Token routing").
Training the VAE took ~54 minutes more, once; `--config.model.vae_workdir=DIR` takes another.
"""

from configs import shapes_pixels, vae_tiny


def get_config():
  c = shapes_pixels.get_config()
  c.model.vae_workdir = vae_tiny.SHIPPED
  c.model.channels = 16  # the VAE's latent channels
  c.model.patch = (1, 2, 2)  # per latent frame; latent frame 0 is pixel frame 0 alone
  c.diffusion.frame_noise_corr = 0.0  # latent frames are already 4 pixel frames each
  # The previous step's x0 estimate as input: squares drawn square 2 -> 7 of 20 held-out at 4,200
  # steps; a step costs 1.25x (0.60 -> 0.75 s at batch 16, same run), so 3,600 steps fit 45 min.
  c.model.self_condition = True
  # Nine in ten steps fed the model's own estimate, not half: 8 of 20 squares at 3,600 steps (shape
  # 0.81, direction 0.95, 33.7 min) against the previous config's 5 of 20 (slb;
  # experiments/STUDIES.md, "Where the squares go"). One run each; the same config at seed 1 drew 1
  # of 20 (shape 0.66).
  c.diffusion.self_condition_prob = 0.9
  # Token routing (models/routing.py, TREAD): in training, half of each latent frame's tokens skip
  # blocks 1-2. A step costs 0.41 s against 0.49-0.50 (experiments/results/
  # token_routing_2026-12-04/step_time_routes.json), so 5,300 steps fit where 4,500 took 44 min:
  # run r13 read held-out shape 0.88 (13 of 20 squares), direction 0.91 in 36.7 min; the same
  # config unrouted at 4,500 steps (s45), shape 0.78 (7 squares), direction 1.00 in 44.0 min.
  # At seeds 1, 2 and 3 it reads shape 0.70, 0.75, 0.75 (4, 5, 4 squares; README, "Token
  # routing"), and routing block 3 too, (1, 4) for 7,000 steps, drew 3 at seed 1: kept at (1, 3).
  c.model.route_blocks = (1, 3)
  c.train.steps = 5_300
  # Epsilon scaling (sampling.SamplerConfig.eps_scale): held-out direction at this config's four
  # seeds 0.91 / 0.84 / 0.89 / 0.89 -> 0.97 / 0.95 / 0.91 / 0.86, shape 0.88 / 0.70 / 0.75 / 0.75
  # -> 0.89 / 0.75 / 0.80 / 0.84 (13 / 5 / 8 / 10 squares of 20); chosen on those four models among
  # 1.15, 1.25 and 1.4 (experiments/STUDIES.md, "Muon and epsilon scaling"). On a fifth seed,
  # trained after the choice: shape 0.78 -> 0.80 (6 -> 7 squares), direction 0.89 -> 0.84
  # (experiments/STUDIES.md, "A fifth seed").
  c.sample.eps_scale = 1.15
  return c
