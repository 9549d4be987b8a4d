"""Noise schedules as alpha(t), sigma(t) of the Gaussian path x_t = alpha(t) x0 + sigma(t) eps.

t runs from 0 (clean) to 1 (pure noise). A schedule only supplies alpha and sigma, so the same
DDIM sampler and loss serve all of them. `shift` > 1 spends more time near noise, which larger
videos need (the same image holds more redundant pixels); it warps t before the schedule.
"""

import jax.numpy as jnp

SCHEDULES = ("cosine", "linear", "rectified_flow")


def check(name: str, shift: float) -> None:
  if name not in SCHEDULES:
    raise ValueError(f"diffusion.schedule={name!r}; allowed: {', '.join(SCHEDULES)}")
  if not shift > 0:
    raise ValueError(f"diffusion.shift={shift}; must be > 0")


def shift_time(t, shift: float):
  """Monotone warp of [0, 1] onto itself: t' = s t / (1 + (s - 1) t)."""
  return shift * t / (1 + (shift - 1) * t)


def alpha_sigma(name: str, t, shift: float = 1.0):
  """(alpha, sigma) at time t (any shape) for schedule `name`."""
  check(name, shift)
  t = shift_time(jnp.asarray(t, jnp.float32), shift)
  if name == "cosine":
    # clip: float32 cos(pi/2) is -4e-8, and alpha must not change sign
    return jnp.clip(jnp.cos(0.5 * jnp.pi * t), 0.0, 1.0), jnp.sin(0.5 * jnp.pi * t)
  if name == "linear":  # DDPM's linear beta schedule (0.1 -> 20 in continuous time), VP
    log_alpha2 = -(0.1 * t + 0.5 * (20.0 - 0.1) * t**2)
    alpha = jnp.exp(0.5 * log_alpha2)
    return alpha, jnp.sqrt(jnp.maximum(1.0 - alpha**2, 0.0))
  return 1.0 - t, t  # rectified flow


def snr(alpha, sigma):
  """Signal-to-noise ratio alpha^2 / sigma^2 (inf at sigma = 0)."""
  return alpha**2 / jnp.maximum(sigma**2, 1e-20)
