"""A 6.7B-parameter latent VideoDiT for 64 TPU v5p chips: 8 s clips of 256 x 256 video.

A 4 x 8 x 8 causal VAE turns 193 frames (8 s at 24 fps) into 49 x 32 x 32 x 16 latents;
patches of (1, 2, 2) make 12,544 tokens a clip. 32 blocks of width 3,072 (24 heads of 128)
compute in bfloat16 with float32 parameters and Adam moments, and every block is rematerialised.
The 64 chips (topology 4x4x4; Cloud counts TensorCores and calls this slice v5p-128) are
fsdp=16 x sequence=4: parameters, EMA and moments shard 16 ways, each clip's tokens split over 4
chips with Ulysses attention (24 heads -> 6 a chip), and 16 clips run side by side. Compiled for
the topology on a CPU host (libtpu, no TPU), a chip holds 6.3 GiB of state and peaks at 33.5 GiB
of its 95 GB (README, "Sharding meshes"):

  sora-jax meshes --config=configs/tpu_v5p_64.py --abstract --topology=v5p:4x4x4

Train (on the pod, after training its VAE with factors (4, 8, 8) and 16 latent channels and
caching its latents with `sora-jax encode-latents`):

  sora-jax train --config=configs/tpu_v5p_64.py --workdir=runs/v5p
"""

from configs import default


def get_config():
  c = default.get_config()
  c.data.frames, c.data.height, c.data.width = 193, 256, 256  # 1 + 4 x 48 frames at 24 fps
  c.data.text_len = 256
  c.data.latent_cache = "runs/v5p_latents"  # `sora-jax encode-latents` writes it
  c.vae.factors = (4, 8, 8)
  c.vae.latent_channels = 16
  c.vae.widths = (128, 256, 512, 512)
  c.model.vae_workdir = "runs/v5p_vae"  # `sora-jax train-vae` with the VAE settings above
  c.model.channels = 16
  c.model.patch = (1, 2, 2)  # 49 x 16 x 16 = 12,544 tokens of 64 numbers
  c.model.width = 3072
  c.model.depth = 32
  c.model.num_heads = 24  # head dim 128
  c.model.text_width = 1024
  c.model.text_depth = 4
  c.model.text_heads = 16
  c.model.dtype = "bfloat16"
  c.model.param_dtype = "float32"
  c.model.remat = True
  c.model.attention = "ulysses"  # tokens over `sequence`, heads exchanged by all-to-all
  c.diffusion.schedule = "rectified_flow"
  c.diffusion.prediction = "flow"
  c.diffusion.loss_weighting = "none"
  c.diffusion.shift = 3.0  # 12k tokens a clip: spend more of training near the noise end
  c.train.batch_size = 16  # clips a step: one per (data x fsdp) slot
  c.train.lr = 1e-4
  c.train.warmup_steps = 2_000
  c.train.steps = 200_000
  c.train.checkpoint_every = 2_000
  c.train.log_every = 20
  c.mesh.data = 1
  c.mesh.fsdp = 16
  c.mesh.tensor = 1
  c.mesh.sequence = 4
  return c
