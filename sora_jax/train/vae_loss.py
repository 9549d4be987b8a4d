"""The VAE's training loss: L1 + L2 reconstruction and a small KL to N(0, I).

A decoder-only run (`vae.train_parts = "decoder"`, started from `vae.init_from`) holds the
encoder still, and may decode latents with the errors a denoiser makes (latent_errors.py), so
the decoder learns to draw clean clips from a DiT's latents. With the encoder in training too,
the errors shape the latent space itself: to be decoded through noise, the encoder must put what
it keeps into large, redundant directions, which a denoiser can learn (the latent-denoising
tokenizer of Yang et al. 2025).
"""

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from sora_jax.models import vae as vae_lib
from sora_jax.train import latent_errors, state as state_lib


@dataclasses.dataclass(frozen=True)
class VaeLossConfig:
  frames_factor: int
  kl_weight: float
  l1_weight: float
  l2_weight: float
  decoder_only: bool = False
  errors: latent_errors.LatentErrors = latent_errors.LatentErrors()

  @classmethod
  def from_config(cls, config):
    v = config.vae
    for name in ("kl_weight", "l1_weight", "l2_weight"):
      if v[name] < 0:
        raise ValueError(f"vae.{name}={v[name]}; must be >= 0")
    errors = latent_errors.LatentErrors.from_config(v)
    decoder_only = "encoder" in state_lib.frozen_modules(config)  # checks vae.train_parts
    if decoder_only and not v.get("init_from"):
      raise ValueError("vae.train_parts='decoder' needs a trained VAE to start from (its "
                       "encoder, its latent units): set vae.init_from")
    return cls(int(v.factors[0]), float(v.kl_weight), float(v.l1_weight), float(v.l2_weight),
               decoder_only, errors)


def psnr(mse):
  """Peak signal-to-noise ratio in dB of a mean squared error on [-1, 1] pixels (peak 2)."""
  return 10.0 * jnp.log10(4.0 / jnp.maximum(mse, 1e-10))


def vae_loss(params, graphdef, batch, key, frozen, cfg: VaeLossConfig):
  """(loss, metrics) of reconstructing the batch's clips through a sampled latent. `frozen`
  holds the latent "shift" and "scale" when cfg.errors are active on a frozen encoder."""
  video, _ = vae_lib.pad_frames(batch["video"], cfg.frames_factor)  # [B, 1 + k ft, H, W, C]
  model = nnx.merge(graphdef, params)
  mean, logvar = model.encode(video)
  if cfg.decoder_only:  # no gradient reaches the encoder, so no backward pass runs through it
    mean, logvar = jax.lax.stop_gradient((mean, logvar))
  z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape, mean.dtype)
  if cfg.errors.active:
    z = with_errors(z, jax.random.fold_in(key, 1), frozen, cfg)
  recon = model.decode(z)
  err = recon - video
  l1, l2 = jnp.mean(jnp.abs(err)), jnp.mean(err**2)
  kl = jnp.mean(vae_lib.kl_divergence(mean, logvar))
  loss = cfg.l1_weight * l1 + cfg.l2_weight * l2 + cfg.kl_weight * kl
  return loss, {"l1": l1, "mse": l2, "kl": kl, "psnr": psnr(l2)}


def with_errors(z, key, frozen, cfg: VaeLossConfig):
  """Latents z [B, T', h, w, Cz] with cfg.errors drawn per clip, sized per channel in the units
  the DiT will see. A frozen encoder's latents are the DiT's, so its source's stored stats; an
  encoder in training gets its batch's own, differentiated through, so that it cannot outgrow
  the noise by scaling its latents up."""
  if cfg.decoder_only:
    shift, scale = frozen["shift"], frozen["scale"]
  else:
    axes = tuple(range(z.ndim - 1))
    shift, scale = jnp.mean(z, axes), jnp.std(z, axes) + 1e-6
  return latent_errors.draw((z - shift) / scale, key, cfg.errors) * scale + shift
