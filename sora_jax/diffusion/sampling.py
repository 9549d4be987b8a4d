"""DDIM over any schedule and prediction type, with classifier-free guidance, in one jit.

One step from t to s < t:  x_s = alpha_s x0_hat + sqrt(sigma_s^2 - c^2) eps_hat + c z, with
c^2 = eta^2 sigma_s^2 (1 - SNR_t / SNR_s), the posterior variance of the Gaussian path. eta = 0 is
deterministic DDIM; for rectified flow it is exactly the Euler step of the flow ODE.
"""

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from sora_jax.diffusion import noise as noise_lib
from sora_jax.diffusion import objectives, schedules


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
  """Static sampler settings: changing any of them compiles a new loop."""
  schedule: str = "cosine"
  shift: float = 1.0
  prediction: str = "v"
  steps: int = 50
  guidance: float = 1.0
  eta: float = 0.0
  frame_noise_corr: float = 0.0  # must match training (see noise.py)

  def __post_init__(self):
    schedules.check(self.schedule, self.shift)
    objectives.check(self.prediction)
    if self.steps < 1:
      raise ValueError(f"steps={self.steps}; must be >= 1")
    if self.eta < 0:
      raise ValueError(f"eta={self.eta}; must be >= 0")
    if self.guidance < 0:
      raise ValueError(f"guidance={self.guidance}; must be >= 0")
    noise_lib.check(self.frame_noise_corr)


def time_grid(steps: int):
  """Times 1 = t_0 > t_1 > ... > t_steps = 0, uniformly spaced."""
  return jnp.linspace(1.0, 0.0, steps + 1)


def ddim_step(cfg: SamplerConfig, x_t, pred, t, s, noise):
  """One DDIM step from time t to s given the model's (guided) prediction at x_t."""
  a_t, s_t = schedules.alpha_sigma(cfg.schedule, t, cfg.shift)
  a_s, s_s = schedules.alpha_sigma(cfg.schedule, s, cfg.shift)
  batch = jnp.full((x_t.shape[0],), 1.0)
  x0, eps = objectives.to_x0_eps(cfg.prediction, pred, x_t, a_t * batch, s_t * batch)
  ratio = jnp.where(s_s > 0, schedules.snr(a_t, s_t) / schedules.snr(a_s, s_s), 0.0)
  c2 = cfg.eta**2 * s_s**2 * jnp.clip(1.0 - ratio, 0.0, 1.0)
  return a_s * x0 + jnp.sqrt(jnp.maximum(s_s**2 - c2, 0.0)) * eps + jnp.sqrt(c2) * noise


def guided(model_fn: Callable, x, t, cond, uncond, guidance: float):
  """Classifier-free guidance: conditional and unconditional passes in one batch."""
  if guidance == 1.0:
    return model_fn(x, t, cond)
  b = x.shape[0]
  both = model_fn(jnp.concatenate([x, x]), jnp.concatenate([t, t]),
                  jnp.concatenate([cond, uncond]))
  pred_c, pred_u = both[:b], both[b:]
  return pred_u + guidance * (pred_c - pred_u)


def sample(model_fn: Callable, cfg: SamplerConfig, key, shape, cond, uncond):
  """Runs the whole DDIM chain from noise; call it under jit (the loop is a lax.fori_loop).

  model_fn(x [B, ...], t [B], text [B, L]) -> prediction; cond / uncond are text tokens [B, L].
  """
  grid = time_grid(cfg.steps)
  init_key, loop_key = jax.random.split(key)
  x = noise_lib.video_noise(init_key, shape, cfg.frame_noise_corr)

  def body(i, x):
    t, s = grid[i], grid[i + 1]
    pred = guided(model_fn, x, jnp.full((shape[0],), t), cond, uncond, cfg.guidance)
    noise = noise_lib.video_noise(jax.random.fold_in(loop_key, i), shape, cfg.frame_noise_corr)
    return ddim_step(cfg, x, pred, t, s, noise)

  return jax.lax.fori_loop(0, cfg.steps, body, x)
