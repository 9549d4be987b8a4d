"""Known frames: the one mechanism behind image-to-video, extension, infilling and connecting.

Next to the noisy clip the model sees the frames it is given (zeros elsewhere) and a per-frame
mask, concatenated as input channels (as in SVD and CogVideoX image-to-video). Training hands a
share of clips known frames in the patterns the Sora features need: the first frame
(image-to-video), a prefix (extend forward), a suffix (extend backward) and both ends (connect two
clips / fill the middle). With one frame known, where the object goes next is decided by the
caption alone, which is the strongest signal a small model gets for learning motion from text.
"""

import jax
import jax.numpy as jnp

PATTERNS = ("first", "prefix", "suffix", "ends")
UNIFORM = (1.0,) * len(PATTERNS)  # pattern weights: every pattern alike


def check_weights(weights) -> tuple:
  """Pattern weights (one per PATTERNS entry, >= 0, not all 0) as a tuple of floats."""
  w = tuple(float(v) for v in weights)
  if len(w) != len(PATTERNS) or min(w) < 0 or sum(w) <= 0:
    raise ValueError(f"diffusion.known_frames_weights={weights}; want {len(PATTERNS)} weights "
                     f">= 0, not all 0, for the patterns {', '.join(PATTERNS)}")
  return w


def random_mask(key, batch: int, frames: int, prob: float, weights=UNIFORM):
  """Known-frame masks [B, T] (float 0 / 1): for a share `prob` of clips one of PATTERNS, drawn
  in proportion to `weights`, with a run length k in [1, T // 2] (T // 4 at each end for "ends");
  none otherwise."""
  if not 0.0 <= prob <= 1.0:
    raise ValueError(f"diffusion.known_frames_prob={prob}; must be in [0, 1]")
  logits = jnp.log(jnp.asarray(check_weights(weights)))  # log 0 = -inf: never drawn
  k_use, k_pattern, k_len = jax.random.split(key, 3)
  use = jax.random.bernoulli(k_use, prob, (batch, 1))
  pattern = jax.random.categorical(k_pattern, logits, shape=(batch, 1))
  k = jax.random.randint(k_len, (batch, 1), 1, max(frames // 2, 1) + 1)
  k_ends = jnp.maximum(k // 2, 1)
  t = jnp.arange(frames)[None]
  masks = jnp.stack([jnp.broadcast_to(m, (batch, frames)) for m in (
      t == 0,
      t < k,
      t >= frames - k,
      (t < k_ends) | (t >= frames - k_ends),
  )])  # [P, B, T], in PATTERNS order
  chosen = jnp.take_along_axis(masks, pattern[None], axis=0)[0]
  return (use & chosen).astype(jnp.float32)


def input_channels(model_cfg) -> int:
  """Channels per pixel of the DiT's input: C, or 2C + 1 with known frames (see model_inputs)."""
  c = model_cfg.channels
  return 2 * c + 1 if model_cfg.get("known_frames", False) else c


def model_inputs(x_t, known, mask):
  """The model's input [B, T, H, W, 2C + 1]: noisy clip, known frames (zeros where unknown) and
  the mask as a channel. known / mask None: nothing known (plain text-to-video)."""
  if known is None:
    extra = jnp.zeros(x_t.shape[:-1] + (x_t.shape[-1] + 1,), x_t.dtype)
    return jnp.concatenate([x_t, extra], axis=-1)
  if known.shape != x_t.shape or mask.shape != x_t.shape[:2]:
    raise ValueError(f"known frames {known.shape} and mask {mask.shape} must match the clip "
                     f"{x_t.shape} and its first two axes")
  m = mask.reshape(mask.shape + (1,) * (x_t.ndim - 2)).astype(x_t.dtype)
  ones = jnp.ones(x_t.shape[:-1] + (1,), x_t.dtype)
  return jnp.concatenate([x_t, known.astype(x_t.dtype) * m, ones * m], axis=-1)


def paste(video, known, mask):
  """The sampled clip with the known frames put back exactly."""
  if known is None:
    return video
  m = mask.reshape(mask.shape + (1,) * (video.ndim - 2)) > 0
  return jnp.where(m, known, video)
