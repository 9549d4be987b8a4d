"""Training the noise-aware attribute classifier (models/attribute_classifier.py) on a latent cache.

The classifier sees what the DiT sees: the cache's normalised latents, noised at times drawn
uniformly from the DiT's schedule (and shift), labelled with the attributes of each clip's plain
caption. It is small, so the whole cache is held in memory and a step is one jitted update.
"""

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from sora_jax.data import captions, latent_cache
from sora_jax.diffusion import objectives, schedules
from sora_jax.models import attribute_classifier as ac


def load_cache(path, limit: int | None = None) -> tuple[np.ndarray, dict]:
  """Latents f32 [N, T, h, w, C] and labels {attribute: int32 [N]} of a latent cache."""
  source = latent_cache.data_source(path)
  decode = latent_cache.DecodeLatent().map
  count = len(source) if limit is None else min(limit, len(source))
  zs, labels = [], {k: [] for k in ac.CLASSES}
  for i in range(count):
    record = decode(source[i])
    zs.append(record["latent"])
    objects = captions.parse_prompt(captions.as_text(record["caption_plain"]))
    for k, v in ac.labels_of(objects).items():
      labels[k].append(v)
  return np.stack(zs), {k: np.asarray(v, np.int32) for k, v in labels.items()}


def noised(key, z, schedule: str, shift: float, t=None):
  """(x_t, t): z noised at unit times t [B] (uniform when not given) of the DiT's schedule."""
  k_t, k_eps = jax.random.split(key)
  if t is None:
    t = jax.random.uniform(k_t, (z.shape[0],))
  a, s = schedules.alpha_sigma(schedule, t, shift)
  return objectives.noisy(z, jax.random.normal(k_eps, z.shape), a, s), t


@functools.partial(nnx.jit, static_argnames=("schedule", "shift"))
def train_step(model, optimizer, key, z, labels, *, schedule: str, shift: float):
  x_t, t = noised(key, z, schedule, shift)

  def loss_fn(m):
    return -ac.log_likelihood(m(x_t, t), labels).mean()

  loss, grads = nnx.value_and_grad(loss_fn)(model)
  optimizer.update(model, grads)
  return loss


@functools.partial(nnx.jit, static_argnames=("schedule", "shift"))
def predict(model, key, z, t, *, schedule: str, shift: float) -> dict:
  x_t, _ = noised(key, z, schedule, shift, t)
  return {k: v.argmax(-1) for k, v in model(x_t, t).items()}


def train(z, labels, *, steps: int, batch: int = 64, lr: float = 2e-3, seed: int = 0,
          schedule: str = "cosine", shift: float = 1.0, width: int = 64, depth: int = 3,
          log_every: int = 100, log=print):
  """A classifier trained for `steps` AdamW steps on batches drawn with replacement."""
  model = ac.AttributeClassifier(z.shape[-1], width=width, depth=depth, rngs=nnx.Rngs(seed))
  sched = optax.warmup_cosine_decay_schedule(0.0, lr, min(100, steps // 10), steps, lr * 0.1)
  optimizer = nnx.Optimizer(model, optax.adamw(sched, weight_decay=0.01), wrt=nnx.Param)
  rng = np.random.default_rng(seed)
  key = jax.random.key(seed)
  start = time.time()
  for i in range(steps):
    idx = rng.integers(0, len(z), batch)
    loss = train_step(model, optimizer, jax.random.fold_in(key, i), z[idx],
                      {k: v[idx] for k, v in labels.items()}, schedule=schedule, shift=shift)
    if log and (i + 1) % log_every == 0:
      log(f"classifier step {i + 1}/{steps}: loss {float(loss):.4f}, "
          f"{(i + 1) / (time.time() - start):.1f} steps/s")
  return model


def accuracy_by_time(model, z, labels, times, *, schedule: str, shift: float, seed: int = 0,
                     batch: int = 256) -> dict:
  """{t: {attribute: accuracy}} on (z, labels) noised at each unit time t."""
  scored = [k for k, lab in labels.items() if (lab >= 0).any()]  # attributes with labels only
  out = {}
  for t in times:
    hits = {k: [] for k in scored}
    for i in range(0, len(z), batch):
      zb = z[i:i + batch]
      pred = predict(model, jax.random.key(seed + i), zb, jnp.full((len(zb),), t, jnp.float32),
                     schedule=schedule, shift=shift)
      for k in scored:
        lab = labels[k][i:i + batch]
        hits[k].append(np.asarray(pred[k])[lab >= 0] == lab[lab >= 0])
    out[float(t)] = {k: float(np.concatenate(v).mean()) for k, v in hits.items()}
  return out
