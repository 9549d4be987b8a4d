"""Token routing for cheaper training steps (TREAD, Krause et al. 2025).

In training, a random share of each clip's tokens skips a span of middle blocks and rejoins the
sequence unchanged after it; the first and last blocks, and the loss, see every token. The routed
blocks run on fewer tokens (a cheaper step), and the skipping tokens carry early features deep
into the network. Sampling routes nothing, so the model it trains is the model it samples.

Tokens are picked the same number per temporal patch and kept in raster order, so the routed
sequence still splits into equal consecutive groups, one per temporal patch: the per-frame
conditioning (layers.per_token) applies to it unchanged.
"""

import jax
import jax.numpy as jnp


def check(blocks, keep: float, depth: int) -> tuple[int, int] | None:
  """model.route_blocks (start, end) and model.route_keep, validated; None when routing is off:
  no blocks, or every token kept (route_keep 1, which turns off a config's route from the
  command line, where a tuple keeps its length)."""
  if not 0.0 < keep <= 1.0:
    raise ValueError(f"model.route_keep={keep!r}: the share of tokens kept must be in (0, 1]")
  if not blocks or keep == 1.0:
    return None
  if len(blocks) != 2:
    raise ValueError(f"model.route_blocks={tuple(blocks)!r}: must be (start, end) or ()")
  start, end = (int(b) for b in blocks)
  if not 0 <= start < end <= depth:
    raise ValueError(f"model.route_blocks={(start, end)}: need 0 <= start < end <= depth={depth}")
  return start, end


def from_config(model_cfg) -> tuple[tuple[int, int] | None, float]:
  """(the checked route span or None, route_keep) of a model config; configs from before
  routing have neither key and route nothing."""
  keep = model_cfg.get("route_keep", 0.5)
  return check(model_cfg.get("route_blocks", ()), keep, model_cfg.depth), keep


def kept_per_group(keep: float, per_group: int) -> int:
  """Tokens of a group the routed blocks see: round(keep * per_group), at least 1."""
  return max(1, round(keep * per_group))


def pick(key, batch: int, groups: int, per_group: int, keep: float):
  """Indices [B, G * k] of the tokens the routed blocks see: k = kept_per_group drawn at random
  within each of G groups of `per_group` consecutive tokens, in order."""
  k = kept_per_group(keep, per_group)
  scores = jax.random.uniform(key, (batch, groups, per_group))
  chosen = jnp.sort(jnp.argsort(scores, axis=-1)[..., :k], axis=-1)
  chosen = chosen + (jnp.arange(groups) * per_group)[None, :, None]
  return chosen.reshape(batch, groups * k)


def gather(x, idx):
  """x [B, N, ...] or [N, ...] (shared by the batch) -> [B, M, ...] at token indices idx [B, M]."""
  if x.ndim == idx.ndim:  # [N, D]: one row per token, the same for every clip
    return x[idx]
  return jnp.take_along_axis(x, idx.reshape(idx.shape + (1,) * (x.ndim - 2)), axis=1)


def scatter(full, part, idx):
  """`full` [B, N, D] with the rows at idx [B, M] replaced by `part` [B, M, D]."""
  return full.at[jnp.arange(full.shape[0])[:, None], idx].set(part)
