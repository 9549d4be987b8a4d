"""The shipped VAE fine-tuned, encoder and decoder, to decode its latents through noise: a
latent space shaped for the DiT, not only for reconstruction.

  sora-jax train-vae --config=configs/vae_tiny_denoising.py --workdir=runs/vae_dn
  sora-jax encode-latents --config=configs/shapes_latent.py --config.model.vae_workdir=runs/vae_dn \
      --config.data.latent_cache=runs/cache_dn
  sora-jax train --config=configs/shapes_latent.py --config.model.vae_workdir=runs/vae_dn \
      --config.data.latent_cache=runs/cache_dn --workdir=runs/dn

The latent DiT's error is a third of the latent's norm even over the last three steps of its chain,
and not the blur a decoder can be tuned to forgive (experiments/STUDIES.md, "A decoder tuned to the
DiT's errors"): its squares are lost in the latent, not in the decoder. A latent-denoising
tokenizer (Yang et al. 2025, l-DeTok) trains the encoder to be decoded through noise, so what it
keeps sits in large, redundant directions that survive a denoiser's error. The noise is sized in
each batch's own per-channel units (vae_loss.with_errors), so the encoder cannot outgrow it; the
latent statistics are measured anew at the end, so this is a new latent space and needs its own
cache.
"""

from configs import vae_tiny


def get_config():
  c = vae_tiny.get_config()
  c.vae.init_from = vae_tiny.SHIPPED
  c.vae.latent_noise = 0.5  # std drawn per clip from [0, 0.5] in unit-variance latent units
  c.vae.latent_clean_prob = 0.25  # a quarter of clips decoded clean, so reconstruction stays exact
  c.train.steps = 1_600
  c.train.lr = 1e-3  # half the VAE's own: it starts trained, but its encoder has to move
  c.train.warmup_steps = 50
  c.train.checkpoint_every = 400
  return c
