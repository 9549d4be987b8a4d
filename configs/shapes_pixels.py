"""The pixel-space recipe for the shapes world, 16 x 32 x 32, on a 2-core CPU within 45 minutes,
keeping every checkpoint for the quality curve (configs/shapes_quality.py until 2026-12-04; the
runs shapes_quality and sq3 of experiments/STUDIES.md are this config).

  sora-jax train --config=configs/shapes_pixels.py --workdir=runs/shapes_pixels
  sora-jax eval --workdir=runs/shapes_pixels --num_prompts 32 --seeds 2
  python experiments/quality_curve.py --workdir=runs/shapes_pixels

It is the tiny pixel recipe (configs/tiny_pixels.py) plus the levers that measured best
(experiments/STUDIES.md, "Why the objects do not move" and "More levers at the full budget"):
held-out shape 0.48 at its 4,200 steps. Its 45 minutes count everything it trains; the latent
recipe on top of it (configs/shapes_latent.py, issue 4's configs/shapes_quality.py) draws far
better in fewer DiT minutes, on a VAE trained once (~54 minutes, `make vae`) and shipped in
assets/vae_tiny.
"""

from configs import tiny_pixels


def get_config():
  c = tiny_pixels.get_config()
  # Known frames as inputs (image-to-video, extension): the model learns to carry a given object
  # forward, and `sample --first_frame_pass` uses that.
  c.model.known_frames = True
  # Three in four clips get some frames clean, and the first-frame pattern (image-to-video, what
  # `sample.first_frame_pass` uses) twice as often as each other one: 37.5% of clips, not 12.5%
  # (held-out direction 0.62 -> 0.73, presence 0.98 -> 0.91 at guidance 5; experiments/STUDIES.md).
  c.diffusion.known_frames_prob = 0.75
  c.diffusion.known_frames_weights = (2.0, 1.0, 0.5, 0.5)
  # A GELU layer before the output: a 768-number patch is no longer confined to a 256-dim
  # subspace (experiments/STUDIES.md, "Why the objects do not move").
  c.model.head_hidden = 768
  # Five times the clips of the demo (seen-pair direction 0.67 -> 0.88; the data build is ~15 s).
  c.data.num_train = 20_000
  # Absolute position features: a token knows where on the canvas it is (presence 0.92 -> 0.94,
  # size 0.78 -> 0.83, direction 0.08 -> 0.17 with known frames, 2,000 steps).
  c.model.abs_pos = True
  # fastText's hashed word embeddings: "left" and "right" differ from step 0 (the only lever that
  # made a reversed direction change the prediction at all; experiments/STUDIES.md text_probe
  # table).
  c.model.text_word_buckets = 4096
  c.train.steps = 4_200  # 2.0 steps/s alone here on 2026-12-01 (35 min), 1.6 on a slower day
  c.train.checkpoint_every = 600
  c.train.max_to_keep = 8  # every checkpoint, for experiments/quality_curve.py
  # Sampler settings measured on this recipe's 4,200-step model, held-out group
  # (experiments/STUDIES.md, "The quality recipe"): guidance 2.5 with the first-frame pass;
  # direction 0.91 (0.83 at 3, 0.75 at 5, 0.89 at 2).
  c.sample.guidance = 2.5
  c.sample.first_frame_pass = True
  return c
