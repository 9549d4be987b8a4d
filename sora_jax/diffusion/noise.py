"""Gaussian noise for videos, optionally correlated across frames (PYoCo's mixed noise).

eps = sqrt(c) * shared + sqrt(1 - c) * independent, with one `shared` frame for the whole clip: every
frame still sees unit-variance noise, but frames of one clip start from related noise, so a model
that decides each temporal patch's layout from its noise decides them alike. Training and sampling
must use the same c.
"""

import jax
import jax.numpy as jnp


def check(corr: float) -> None:
  if not 0.0 <= corr < 1.0:
    raise ValueError(f"diffusion.frame_noise_corr={corr}; must be in [0, 1)")


def video_noise(key, shape, corr: float = 0.0):
  """Unit-variance noise of `shape` [B, T, ...] whose frames share a fraction `corr` of variance."""
  check(corr)
  if corr == 0.0:
    return jax.random.normal(key, shape, jnp.float32)
  k_shared, k_own = jax.random.split(key)
  shared = jax.random.normal(k_shared, (shape[0], 1) + tuple(shape[2:]), jnp.float32)
  own = jax.random.normal(k_own, shape, jnp.float32)
  return jnp.sqrt(corr) * shared + jnp.sqrt(1.0 - corr) * own
