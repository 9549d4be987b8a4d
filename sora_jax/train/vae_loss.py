"""The VAE's training loss: L1 + L2 reconstruction and a small KL to N(0, I)."""

import dataclasses

import jax.numpy as jnp
from flax import nnx

from sora_jax.models import vae as vae_lib


@dataclasses.dataclass(frozen=True)
class VaeLossConfig:
  frames_factor: int
  kl_weight: float
  l1_weight: float
  l2_weight: float

  @classmethod
  def from_config(cls, config):
    v = config.vae
    for name in ("kl_weight", "l1_weight", "l2_weight"):
      if v[name] < 0:
        raise ValueError(f"vae.{name}={v[name]}; must be >= 0")
    return cls(int(v.factors[0]), float(v.kl_weight), float(v.l1_weight), float(v.l2_weight))


def psnr(mse):
  """Peak signal-to-noise ratio in dB of a mean squared error on [-1, 1] pixels (peak 2)."""
  return 10.0 * jnp.log10(4.0 / jnp.maximum(mse, 1e-10))


def vae_loss(params, graphdef, batch, key, frozen, cfg: VaeLossConfig):
  """(loss, metrics) of reconstructing the batch's clips through a sampled latent."""
  del frozen
  video, _ = vae_lib.pad_frames(batch["video"], cfg.frames_factor)  # [B, 1 + k ft, H, W, C]
  recon, mean, logvar = nnx.merge(graphdef, params)(video, key)
  err = recon - video
  l1, l2 = jnp.mean(jnp.abs(err)), jnp.mean(err**2)
  kl = jnp.mean(vae_lib.kl_divergence(mean, logvar))
  loss = cfg.l1_weight * l1 + cfg.l2_weight * l2 + cfg.kl_weight * kl
  return loss, {"l1": l1, "mse": l2, "kl": kl, "psnr": psnr(l2)}
