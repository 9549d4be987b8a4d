"""A noise-aware classifier of what a noisy clip shows: the guide of classifier guidance.

Classifier guidance (Dhariwal & Nichol 2021) adds the gradient of log p(attribute | x_t) to the
denoiser's estimate at every step of the chain. Where a small DiT hands back a rounder square
than it was shown, the classifier's gradient points at what makes the clip read as "square"
(its corners) at the noise level where that is decided. It is trained on the noisy latents the
DiT sees, at every noise level of the same schedule, and labelled from the training captions.

A few 3D convolutions modulated by the noise level, pooled over space and time, one softmax
head per attribute. Small in parameters, not in time: full-resolution 3D convolutions on the
2-core CPU ran 1.2 steps/s at batch 64 (experiments/STUDIES.md, "Classifier guidance on shape").
"""

import jax
import jax.numpy as jnp
from flax import nnx

from sora_jax.data import world
from sora_jax.models import layers

# What it classifies, and the classes of each (the order of the logits).
CLASSES = {"colour": tuple(world.PALETTE), "shape": world.SHAPES, "size": tuple(world.SIZES),
           "direction": tuple(world.DIRECTIONS)}
TIME_FEATURES = 128


class ConvBlock(nnx.Module):
  """3 x 3 x 3 convolution, adaLN-style scale and shift by the noise level, GELU, residual."""

  def __init__(self, dim, rngs):
    self.conv = nnx.Conv(dim, dim, (3, 3, 3), padding="SAME", rngs=rngs)
    self.norm = nnx.GroupNorm(dim, num_groups=8, use_scale=False, use_bias=False, rngs=rngs)
    self.film = nnx.Linear(dim, 2 * dim, kernel_init=nnx.initializers.zeros_init(), rngs=rngs)

  def __call__(self, x, c):
    shift, scale = jnp.split(self.film(c)[:, None, None, None], 2, -1)
    return x + jax.nn.gelu(self.norm(self.conv(x)) * (1 + scale) + shift)


class AttributeClassifier(nnx.Module):
  """Noisy latents [B, T, h, w, C] at unit time t [B] -> {attribute: logits [B, classes]}."""

  def __init__(self, channels: int, *, width: int = 64, depth: int = 3, rngs: nnx.Rngs):
    self.stem = nnx.Conv(channels, width, (3, 3, 3), padding="SAME", rngs=rngs)
    self.time = nnx.Linear(TIME_FEATURES, width, rngs=rngs)
    self.blocks = nnx.List([ConvBlock(width, rngs) for _ in range(depth)])
    self.pool = nnx.Linear(2 * width, width, rngs=rngs)
    self.heads = nnx.Dict({k: nnx.Linear(width, len(v), rngs=rngs) for k, v in CLASSES.items()})

  def __call__(self, x, t) -> dict:
    c = jax.nn.silu(self.time(layers.timestep_embedding(t, TIME_FEATURES)))
    h = self.stem(x)
    for block in self.blocks:
      h = block(h, c)
    pooled = jnp.concatenate([h.mean((1, 2, 3)), h.max((1, 2, 3))], -1)  # where and how much
    f = jax.nn.gelu(self.pool(pooled))
    return {k: head(f) for k, head in self.heads.items()}


def labels_of(objects) -> dict:
  """A single object's attributes (captions.parse_prompt's dicts) -> {attribute: class index},
  -1 where the attribute is not given (ignored by the loss and by guidance)."""
  out = {}
  for key, classes in CLASSES.items():
    value = objects[0].get(key) if len(objects) == 1 else None
    out[key] = classes.index(value) if value in classes else -1
  return out


def log_likelihood(logits: dict, labels: dict, weights: dict | None = None):
  """Sum over attributes of (weight x) log p(label) per example [B]; labels -1 count 0."""
  total = 0.0
  for key, lab in labels.items():
    logp = jax.nn.log_softmax(logits[key].astype(jnp.float32))
    picked = jnp.take_along_axis(logp, jnp.maximum(lab, 0)[:, None], 1)[:, 0]
    w = 1.0 if weights is None else weights.get(key, 0.0)
    total = total + w * jnp.where(lab >= 0, picked, 0.0)
  return total
