"""A denoiser's errors in latent space, drawn at random to train a decoder that forgives them.

An MSE denoiser that is unsure where an object's edge lies hands back the average of the places it
might be: latents blurred over their neighbours and shrunk toward the channel mean, plus some
noise. The shipped VAE's decoder draws a square round from latents blurred at weight 0.6 or shrunk
by half (experiments/latent_noise_probe.py), though the latents still differ from a circle's.
Decoding such latents to the clean clip during training (`vae.latent_*`, with `vae.train_parts =
"decoder"` so the latent space stays the DiT's) teaches the decoder to draw the shape anyway.

All sizes are in normalised latent units (the DiT's: unit variance per channel), each drawn per
clip uniformly from [0, max]:
  blur   each latent pixel mixed with its 3 x 3 neighbourhood mean at weight w
  shrink the latents scaled by 1 - s toward the channel mean
  noise  Gaussian noise of std n
and a share `clean_prob` of clips decoded untouched, so reconstruction stays exact.
"""

import dataclasses

import jax
import jax.numpy as jnp

NAMES = ("latent_blur", "latent_shrink", "latent_noise", "latent_clean_prob")


@dataclasses.dataclass(frozen=True)
class LatentErrors:
  blur: float = 0.0
  shrink: float = 0.0
  noise: float = 0.0
  clean_prob: float = 0.0

  @classmethod
  def from_config(cls, vae_cfg) -> "LatentErrors":
    values = [float(vae_cfg.get(name, 0.0)) for name in NAMES]
    for name, value, top in zip(NAMES, values, (1.0, 1.0, float("inf"), 1.0)):
      if not 0.0 <= value <= top:
        raise ValueError(f"vae.{name}={value}; allowed: 0 <= value <= {top:g}")
    return cls(*values)

  @property
  def active(self) -> bool:
    return self.clean_prob < 1.0 and (self.blur > 0 or self.shrink > 0 or self.noise > 0)


def neighbourhood_mean(z):
  """The mean of each latent pixel's 3 x 3 neighbourhood (edges repeated); z [B, T, h, w, C]."""
  pad = jnp.pad(z, ((0, 0), (0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
  h, w = z.shape[2:4]
  return sum(pad[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9.0


def perturb(z, blur, shrink, noise, eps):
  """z blurred at weight `blur`, scaled by 1 - `shrink` and offset by `noise` * eps (each a
  scalar or broadcastable per clip)."""
  return (1.0 - shrink) * ((1.0 - blur) * z + blur * neighbourhood_mean(z)) + noise * eps


def draw(z, key, errors: LatentErrors):
  """Normalised latents [B, T, h, w, C] with a random error of each kind per clip."""
  keys = jax.random.split(key, 5)
  per_clip = (z.shape[0],) + (1,) * (z.ndim - 1)
  u = [jax.random.uniform(k, per_clip) for k in keys[:3]]
  off = perturb(z, u[0] * errors.blur, u[1] * errors.shrink, u[2] * errors.noise,
                jax.random.normal(keys[3], z.shape, z.dtype))
  clean = jax.random.uniform(keys[4], per_clip) < errors.clean_prob
  return jnp.where(clean, z, off)
