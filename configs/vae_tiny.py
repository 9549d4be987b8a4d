"""The video compression network for the 16 x 32 x 32 shapes world, sized for a 2-core CPU.

  sora-jax train-vae --config=configs/vae_tiny.py --workdir=runs/vae_tiny

16 frames are padded to 17 = 1 + 4 x 4 and encoded to 5 latent frames of 8 x 8 x 16 (10x fewer
numbers than pixels); the first latent frame holds frame 0 alone, so images encode too.
"""

import os

from configs import tiny_pixels

# This config trained for its 4,000 steps and exported (`make vae`): the VAE the repository ships.
SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets",
                       "vae_tiny")


def get_config():
  c = tiny_pixels.get_config()  # its data set: 4,000 clips of 16 x 32 x 32
  c.task = "vae"
  c.vae.latent_channels = 16  # 8 measured worse: PSNR 22.9 vs 24.2 dB, shapes kept 0.45 vs 0.56
  c.vae.factors = (4, 4, 4)
  # Patchify 4 x 4 x 4 first and run everything at 5 x 8 x 8: convs at 32 x 32 cost ~20x more
  # time here (measured: 4.1 s vs 0.22 s a step at batch 16).
  c.vae.stem = (4, 4, 4)
  c.vae.widths = (128,)
  c.vae.blocks = 1
  # A SiLU layer before the output conv: 192-number pixel patches no longer come linearly from
  # 128 features. Held-out attributes kept 0.55 -> 0.70 at 2,000 steps; 0.92 at 4,000 (README).
  c.vae.head_hidden = 768
  # Three 3x3 convs of 16 channels per frame at full resolution after the decoder: they sharpen the
  # edges the 4 x 4 x 4 output patches blur (models/pixel_head.py). At 4,000 steps held-out PSNR
  # 27.6 -> 29.5 dB and attributes kept 0.92 -> 0.98 (README); the step costs ~1.8x here.
  c.vae.pixel_head = 16
  c.train.steps = 4_000
  # Twice tiny_pixels' lr: at 4,000 steps held-out PSNR 29.5 -> 32.3 dB and attributes kept 63/64
  # -> 64/64 (README); at 1,500 steps 25.5 -> 27.3 dB.
  c.train.lr = 2e-3
  c.train.ema_decay = 0.99  # batch, warmup and checkpoints as in tiny_pixels
  return c
