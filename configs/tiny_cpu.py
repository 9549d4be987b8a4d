"""The `make demo` config: a text-to-video DiT trained in minutes on a 2-core CPU, in the latent
space of the VAE the repository ships (assets/vae_tiny, configs/vae_tiny.py trained 4,000 steps).

  sora-jax encode-latents --config=configs/tiny_cpu.py
  sora-jax train --config=configs/tiny_cpu.py --workdir=runs/demo

It is the latent quality recipe (configs/shapes_latent.py) on the shipped VAE, cut to the demo's
budget. Why latents: the VAE's decoder draws the shapes' edges and their motion inside a 4-frame
latent, so the DiT only places 64-number latent patches, and it learned to move objects in
fewer steps than the pixel DiT (held-out direction 0.53 against 0.23 at step 1,200 of two
4,200-step runs; README, "The demo model"). The VAE's own ~54 minutes of training are
paid once, by whoever exports it (`sora-jax export`), not by every demo.
"""

from configs import shapes_latent


def get_config():
  c = shapes_latent.get_config()  # model.vae_workdir: the shipped VAE, an absolute path
  c.data.latent_cache = "runs/demo_latents"  # written by `sora-jax encode-latents` (~1 min)
  # 10,000 clips (20,000 until 2026-12-03): half the clips halve the VAE encode (2:03 -> 1:03
  # with the build). At most 3,200 steps: `make demo` passes train.fit_minutes, so the run trains
  # what this machine fits before minute ~17 of the demo, the cosine ending on its last step
  # (1,600 steps fitted the demo's 20 minutes at 1.6-1.7 steps/s on 2026-12-03; this CPU ran 3.5
  # on 2026-12-05). Held-out 16 x 2 at eta 1: shape 0.34 -> 0.56, direction 0.78 -> 0.94 from
  # 1,600 to 3,200 steps, and the sheet's four objects clean (README, "The demo model").
  c.data.num_train = 10_000
  c.train.steps = 3_200
  # Self-conditioning (shapes_latent's since 2026-12-02) costs 1.25x a step, which would take
  # the demo past its 20 minutes, so the demo trains without it.
  c.model.self_condition = False
  # Token routing (shapes_latent's since 2026-12-04) at about the demo's compute, (1, 3) for 2,000
  # steps (dr13), read held-out shape 0.42, direction 0.64 against 0.41, 0.75, and its sheet was no
  # cleaner (experiments/STUDIES.md, "Seven more levers"): the demo keeps every token.
  c.model.route_keep = 1.0
  c.train.checkpoint_every = 600
  c.train.max_to_keep = 3
  # Stochastic DDIM: fresh noise each step lets this under-trained model correct itself. Held-out
  # 32 x 2 at 1,800 steps: shape 0.38 -> 0.47, direction 0.62 -> 0.72, presence 1.00 -> 0.98,
  # and the sheet's small triangle comes out a triangle (README, "The demo model"). On the
  # 4,200-step latent model it reads worse (shape 0.72 -> 0.67), so shapes_latent keeps eta 0.
  c.sample.eta = 1.0
  c.sample.eps_scale = 1.0  # shapes_latent's 1.15 is not measured on the demo model
  return c
