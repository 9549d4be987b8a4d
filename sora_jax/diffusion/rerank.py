"""Best-of-N sampling with the model as its own verifier.

A diffusion model is also a classifier of its own conditioning (Li et al. 2023, "Your Diffusion
Model is Secretly a Zero-Shot Classifier"): how much better it denoises a clip told the prompt
than told nothing estimates, up to the weighting of noise levels, log p(clip | prompt) -
log p(clip) = log p(prompt | clip) - log p(prompt), the pointwise mutual information (PMI) of
clip and prompt. Drawing N candidates a prompt and keeping the one of highest PMI
spends N times the sampling on prompt adherence, with no second model and nothing about the
prompt's world built in. Every candidate of a prompt is scored on the same noise draws (common
random numbers), so the ranking compares clips, not noise. Against the prompt with each other
shape word instead of no text (the shape margin), the score asks only which shape the clip shows.
"""

from typing import Callable

import jax
import jax.numpy as jnp

from sora_jax.diffusion import noise as noise_lib
from sora_jax.diffusion import objectives, schedules, self_condition


SCORES = ("pmi", "shape_margin")  # against no text; against the prompt's other shapes


def check(candidates: int, levels: int, score: str = "pmi") -> None:
  if score not in SCORES:
    raise ValueError(f"rerank_score={score!r}; allowed: {', '.join(SCORES)}")
  if candidates < 1:
    raise ValueError(f"candidates={candidates}; must be >= 1 (1: no reranking)")
  if levels < 1:
    raise ValueError(f"rerank_levels={levels}; must be >= 1")


def level_times(levels: int):
  """The unit times [levels] the score averages over: midpoints of a uniform grid (the
  schedule's shift then places them as training drew them)."""
  return (jnp.arange(levels, dtype=jnp.float32) + 0.5) / levels


def level_noise(cfg, key, k, shape):
  """The noise of level k: one clip's draw from fold_in(key, k), shared by every row of `shape`
  [B, ...], so the clips of one prompt are compared on the same draws."""
  eps = noise_lib.video_noise(jax.random.fold_in(key, k), (1,) + tuple(shape[1:]),
                              cfg.frame_noise_corr)
  return jnp.broadcast_to(eps, shape)


def denoising_error(model_fn: Callable, cfg, z0, text, t, eps):
  """Mean squared eps-error [B] of the model on z0 noised to unit time t (scalar) with eps.

  A self-conditioning model is run as it trained: its first estimate fed back once."""
  times = jnp.full(z0.shape[:2], t)
  alpha, sigma = schedules.alpha_sigma(cfg.schedule, times, cfg.shift)
  x_t = objectives.noisy(z0, eps, alpha, sigma)
  extra = (jnp.zeros_like(z0),) if cfg.self_condition else ()
  pred = model_fn(x_t, times, text, None, None, *extra)
  if cfg.self_condition:
    estimate = self_condition.x0_estimate(cfg.prediction, pred, x_t, alpha, sigma)
    pred = model_fn(x_t, times, text, None, None, estimate)
  _, eps_hat = objectives.to_x0_eps(cfg.prediction, pred, x_t, alpha, sigma)
  return jnp.mean(jnp.square(eps_hat - eps), axis=tuple(range(1, z0.ndim)))


def gap_scores(model_fn: Callable, cfg, key, z0, cond, others, levels: int):
  """Per clip of z0 [B, ...] (what the model denoises), the smallest gap between its denoising
  error told another text (each of `others`, [B, L] tokens) and told its prompt `cond`, averaged
  over `levels` noise levels: higher = more the prompt's clip. With others = (no text,) it is
  the PMI; with the prompt's other shapes, the shape margin.

  Each level's noise is `level_noise`: the same for every clip."""
  texts = jnp.concatenate([cond, *others])
  b, n = z0.shape[0], 1 + len(others)
  tile = lambda v: jnp.concatenate([v] * n)
  def level(k, total):
    eps = level_noise(cfg, key, k, z0.shape)
    err = denoising_error(model_fn, cfg, tile(z0), texts, level_times(levels)[k], tile(eps))
    return total + err.reshape(n, b)
  err = jax.lax.fori_loop(0, levels, level, jnp.zeros((n, b), jnp.float32)) / levels
  return jnp.min(err[1:] - err[0], axis=0)


def best_of(model_fn: Callable, cfg, draw: Callable, key, batch: int, cond, others,
            shown: Callable = lambda z: z):
  """Runs `draw(key, repeat)` once for cfg.candidates x `batch` rows (repeat(v) tiles a
  per-prompt array [batch, ...] candidate-major: row n * batch + b is candidate n of prompt b)
  and keeps each prompt's candidate of highest `gap_scores` of shown(candidate) against
  `others` (tokens [batch, L] each): [batch, ...].

  `shown` maps a draw to what the model denoises as it will be seen: for a latent DiT, the
  latent of the decoded video (the VAE's encoder of its decoder). The chain's own latent can
  hold what the decoder drops; scored raw, the pick drew fewer held-out squares than one draw
  (experiments/STUDIES.md, "Best of N")."""
  n = cfg.candidates
  repeat = lambda v: None if v is None else jnp.concatenate([v] * n)
  k_draw, k_score = jax.random.split(key)
  drawn = draw(k_draw, repeat)
  scores = gap_scores(model_fn, cfg, k_score, shown(drawn), repeat(cond),
                      tuple(map(repeat, others)), cfg.rerank_levels)
  pick = jnp.argmax(scores.reshape(n, batch), axis=0)  # [batch]
  drawn = drawn.reshape((n, batch) + drawn.shape[1:])
  return drawn[pick, jnp.arange(batch)]
