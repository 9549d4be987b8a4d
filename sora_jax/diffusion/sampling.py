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
from sora_jax.diffusion import known_frames, objectives, rerank, schedules, self_condition


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
  """Static sampler settings: changing any of them compiles a new loop."""
  schedule: str = "cosine"
  shift: float = 1.0
  prediction: str = "v"
  steps: int = 50
  guidance: float = 1.0
  # weight of (pred(prompt) - pred(prompt without some attribute words)): the attribute's own
  # effect strengthened against the rest of the prompt; needs the `contrast` tokens
  attribute_guidance: float = 0.0
  eta: float = 0.0
  # epsilon scaling (Ning et al. 2024): each step carries eps_hat / eps_scale, not eps_hat. A
  # sampled x_t strays from the x_t the model trained on (exposure bias); > 1 shrinks the
  # predicted noise each step passes on. 1: plain DDIM
  eps_scale: float = 1.0
  frame_noise_corr: float = 0.0  # must match training (see noise.py)
  stagger: float = 0.0  # lag of the last frame group behind the first, in chain lengths
  time_group: int = 1  # frames sharing one noise level (the model's temporal patch)
  # draw the clip, keep its first frame, draw it again knowing that frame (sample_via_first_frame)
  first_frame_pass: bool = False
  # the first-frame pass draws that frame alone, as an image (T = 1), not as part of a clip
  draft_image: bool = False
  # hand the model the previous step's x0 estimate (a model built with model.self_condition)
  self_condition: bool = False
  # weight a of autoguidance: pred + a (pred - guide's pred), the guide a worse model (autoguided)
  autoguidance: float = 0.0
  # draw this many clips a prompt and keep the one the model itself finds most the prompt's
  # (rerank.best_of), scored over rerank_levels noise levels; 1: one draw, no scoring
  candidates: int = 1
  rerank_levels: int = 16
  # what a draw is scored against (rerank.SCORES): no text (the PMI), or the prompt with each
  # other shape word (the shape margin)
  rerank_score: str = "pmi"
  # with the first-frame pass: rank the drafts (whose frame 0 is kept), not the finished clips,
  # so the motion is drawn after the pick, as with one draw (without the pass, e.g. an edit, the
  # finished clips are ranked)
  rerank_draft: bool = False

  def __post_init__(self):
    schedules.check(self.schedule, self.shift)
    objectives.check(self.prediction)
    if self.steps < 1:
      raise ValueError(f"steps={self.steps}; must be >= 1")
    if self.eta < 0:
      raise ValueError(f"eta={self.eta}; must be >= 0")
    if not self.eps_scale > 0:
      raise ValueError(f"eps_scale={self.eps_scale}; must be > 0 (1: plain DDIM)")
    if self.guidance < 0:
      raise ValueError(f"guidance={self.guidance}; must be >= 0")
    if self.attribute_guidance < 0:
      raise ValueError(f"attribute_guidance={self.attribute_guidance}; must be >= 0")
    if not self.autoguidance >= 0:
      raise ValueError(f"autoguidance={self.autoguidance}; must be >= 0")
    noise_lib.check(self.frame_noise_corr)
    if self.stagger < 0:
      raise ValueError(f"stagger={self.stagger}; must be >= 0")
    if self.time_group < 1:
      raise ValueError(f"time_group={self.time_group}; must be >= 1")
    rerank.check(self.candidates, self.rerank_levels, self.rerank_score)
    if self.rerank_draft and self.draft_image:
      raise ValueError("rerank_draft ranks whole-clip drafts; an image draft (draft_image) is "
                       "not scored")
    if self.draft_image and not (self.first_frame_pass and self.time_group == 1):
      raise ValueError("draft_image needs first_frame_pass and time_group = 1 (one frame a "
                       "temporal patch)")


def frame_times(cfg: SamplerConfig, i, frames: int):
  """Noise level [T] of every frame after i of cfg.steps steps.

  Frame group k of K (cfg.time_group frames each) runs the uniform grid from 1 to 0 delayed by
  k / (K - 1) * cfg.stagger chain lengths: stagger 0 denoises all frames together; stagger 1
  finishes the first group before the last one starts, so later frames are drawn knowing the
  earlier ones (a pyramid / causal schedule, as in Diffusion Forcing).
  """
  groups = -(-frames // cfg.time_group)
  lag = cfg.stagger * jnp.arange(groups, dtype=jnp.float32) / max(groups - 1, 1)
  progress = jnp.asarray(i, jnp.float32) / cfg.steps * (1.0 + cfg.stagger)
  t = 1.0 - jnp.clip(progress - lag, 0.0, 1.0)
  return jnp.repeat(t, cfg.time_group)[:frames]


def ddim_step(cfg: SamplerConfig, x_t, pred, t, s, noise):
  """One DDIM step from time t to s given the model's (guided) prediction at x_t.

  t, s: scalars, [B] or [B, T] (per frame). Frames with t == s (not started, or finished) are
  returned unchanged.
  """
  t, s = _per_frame(t, x_t), _per_frame(s, x_t)
  a_t, s_t = schedules.alpha_sigma(cfg.schedule, t, cfg.shift)
  a_s, s_s = schedules.alpha_sigma(cfg.schedule, s, cfg.shift)
  x0, eps = objectives.to_x0_eps(cfg.prediction, pred, x_t, a_t, s_t)
  eps = eps / cfg.eps_scale
  # SNR_t / SNR_s, 0 at s = 0; no 0 / 0 where both are pure noise (frames not started yet)
  ratio = jnp.where(s_s > 0, schedules.snr(a_t, s_t) / jnp.maximum(schedules.snr(a_s, s_s), 1e-20),
                    0.0)
  c2 = cfg.eta**2 * s_s**2 * jnp.clip(1.0 - ratio, 0.0, 1.0)
  e = lambda v: objectives.expand(v, x_t)
  x_s = e(a_s) * x0 + e(jnp.sqrt(jnp.maximum(s_s**2 - c2, 0.0))) * eps + e(jnp.sqrt(c2)) * noise
  return jnp.where(e(t == s), x_t, x_s)


def _per_frame(v, x):
  """A scalar, [B] or [B, T] time -> [B, T] for x [B, T, ...]."""
  v = jnp.asarray(v, jnp.float32)
  return jnp.broadcast_to(v[:, None] if v.ndim == 1 else v, x.shape[:2])


def autoguided(model_fn: Callable, guide_fn: Callable, weight: float) -> Callable:
  """Autoguidance (Karras et al. 2024, "Guiding a Diffusion Model with a Bad Version of
  Itself"): the prediction pushed away from that of a worse model of the same task - a smaller
  one, or an earlier checkpoint - by `weight` times their difference. Where the two err alike
  (a blurred corner, an edge between two places), the difference points past the error; where
  both are right it is zero, so unlike guidance against the unconditional model it does not
  narrow what is drawn. Both see the same inputs, text included: it composes with `guided`."""
  def fn(*args):
    pred = model_fn(*args)
    return pred + weight * (pred - guide_fn(*args))
  return fn


def guided(model_fn: Callable, x, t, cond, uncond, guidance: float, known=None, mask=None,
           estimate=None, contrast=None, attribute_guidance: float = 0.0):
  """Classifier-free guidance: conditional and unconditional passes in one batch (both see the
  known frames and the self-conditioning estimate, if any: guidance is on the text).

  With attribute_guidance w, `contrast` = (positive, negative) tokens: the prompt (positive None:
  `cond` itself) and the prompt without some attribute words. Their passes join the batch and
  w (pred_positive - pred_negative), what those words alone change, is added to the guided
  prediction (composable guidance, Liu et al. 2022)."""
  texts = [cond]
  if guidance != 1.0:
    texts.append(uncond)
  if attribute_guidance:
    if contrast is None:
      raise ValueError("attribute_guidance needs the contrast prompts' tokens")
    texts += [v for v in contrast if v is not None]
  extra = () if estimate is None else (estimate,)
  if len(texts) == 1:
    return model_fn(x, t, cond, known, mask, *extra)
  b, n = x.shape[0], len(texts)
  tile = lambda v: None if v is None else jnp.concatenate([v] * n)
  preds = model_fn(tile(x), tile(t), jnp.concatenate(texts), tile(known), tile(mask),
                   *map(tile, extra))
  pred_c = out = preds[:b]
  if guidance != 1.0:
    out = preds[b:2 * b] + guidance * (pred_c - preds[b:2 * b])
  if attribute_guidance:
    positive = pred_c if contrast[0] is None else preds[-2 * b:-b]
    out = out + attribute_guidance * (positive - preds[-b:])
  return out


def sample(model_fn: Callable, cfg: SamplerConfig, key, shape, cond, uncond, known=None,
           mask=None, *, start=None, strength: float = 1.0, contrast=None):
  """Runs the DDIM chain from noise; call it under jit (the loop is a lax.fori_loop).

  model_fn(x [B, T, ...], t [B, T], text [B, L], known, mask) -> prediction; cond / uncond: text
  tokens [B, L]; known [B, T, ...] / mask [B, T]: frames given clean (None: text-to-video).
  start [B, T, ...]: a video to edit (SDEdit, Meng et al. 2022): it is noised to where the last
  `strength` of the chain begins and only that part runs; strength 1 ignores it, 0 returns it.
  contrast: (positive [B, L] or None, negative [B, L]) tokens for cfg.attribute_guidance (guided).
  """
  init_key, loop_key = jax.random.split(key)
  x = noise_lib.video_noise(init_key, shape, cfg.frame_noise_corr)
  first = 0
  if start is not None:
    first = edit_first_step(cfg, strength)
    t0 = jnp.broadcast_to(frame_times(cfg, first, shape[1]), shape[:2])
    x = objectives.noisy(start, x, *schedules.alpha_sigma(cfg.schedule, t0, cfg.shift))

  def body(i, carry):
    x, estimate = carry  # estimate: the previous step's x0 (self-conditioning) or None
    t = jnp.broadcast_to(frame_times(cfg, i, shape[1]), shape[:2])
    s = jnp.broadcast_to(frame_times(cfg, i + 1, shape[1]), shape[:2])
    pred = guided(model_fn, x, t, cond, uncond, cfg.guidance, known, mask, estimate, contrast,
                  cfg.attribute_guidance)
    noise = noise_lib.video_noise(jax.random.fold_in(loop_key, i), shape, cfg.frame_noise_corr)
    if estimate is not None:
      estimate = self_condition.x0_estimate(
          cfg.prediction, pred, x, *schedules.alpha_sigma(cfg.schedule, t, cfg.shift))
    return ddim_step(cfg, x, pred, t, s, noise), estimate

  estimate = jnp.zeros_like(x) if cfg.self_condition else None
  x, _ = jax.lax.fori_loop(first, cfg.steps, body, (x, estimate))
  return known_frames.paste(x, known, mask)


def edit_first_step(cfg: SamplerConfig, strength: float) -> int:
  """The step an edit of `strength` in [0, 1] starts at: the last round(strength * steps) run."""
  if not 0.0 <= strength <= 1.0:
    raise ValueError(f"strength={strength}; must be in [0, 1]")
  if cfg.stagger:
    raise ValueError("editing a video (strength) needs stagger = 0: every frame starts together")
  return cfg.steps - round(strength * cfg.steps)


def sample_via_first_frame(model_fn: Callable, cfg: SamplerConfig, key, shape, cond, uncond,
                           contrast=None):
  """Emu Video's factorisation with one model: draw the clip, keep its first frame, then draw the
  clip again knowing that frame. The second pass is image-to-video, where the caption alone says
  where things go next, which a model trained with known frames follows far better than it
  picks a motion out of pure noise. Needs a model built with model.known_frames."""
  k_draft, k_final = jax.random.split(key)
  draft = draft_first_frame(model_fn, cfg, k_draft, shape, cond, uncond, contrast)
  return sample_from_first_frame(model_fn, cfg, k_final, shape, cond, uncond, draft, contrast)


def draft_first_frame(model_fn: Callable, cfg: SamplerConfig, key, shape, cond, uncond,
                      contrast=None):
  """The first-frame pass's draft [B, T, ...]: a whole clip, or with cfg.draft_image frame 0
  drawn alone as an image (a model trained on images too, train.image_batch) and zeros after."""
  if cfg.draft_image:
    first = sample(model_fn, cfg, key, (shape[0], 1) + tuple(shape[2:]), cond, uncond,
                   contrast=contrast)
    return jnp.zeros(shape, first.dtype).at[:, :1].set(first)
  return sample(model_fn, cfg, key, shape, cond, uncond, contrast=contrast)


def sample_from_first_frame(model_fn: Callable, cfg: SamplerConfig, key, shape, cond, uncond,
                            draft, contrast=None):
  """The second pass: the clip drawn again, knowing the draft's first frame."""
  mask = jnp.zeros(shape[:2], jnp.float32).at[:, 0].set(1.0)
  return sample(model_fn, cfg, key, shape, cond, uncond, known=draft, mask=mask,
                contrast=contrast)
