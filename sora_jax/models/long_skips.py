"""Long skip connections between shallow and deep blocks (U-ViT, Bao et al. 2023).

Block i of the second half reads, besides the residual stream, the output of its mirror block
depth - 1 - i in the first half: the two are concatenated and projected back to the width, as
U-ViT does. The shallow features still hold the noisy input's fine detail (an object's exact
edges and corners), which the deep blocks could then copy rather than rebuild; U-ViT's ablations
found the skips crucial to its image quality. The projection starts as [I; 0], so an untrained
model with skips computes exactly what one without them does, and learns how much of the skip to
take. On this project's demo they judged worse (experiments/STUDIES.md), so they are off by default.
"""

import jax.numpy as jnp
from flax import nnx


def mirrors(depth: int) -> dict[int, int]:
  """{deep block: the shallow block whose output it reads}; the middle block of an odd depth
  has no mirror."""
  return {depth - 1 - i: i for i in range(depth // 2)}


def check(depth: int, route) -> None:
  """A skip must join tokens of the same sequence: both blocks inside a token route's span
  (routed tokens only) or both outside it (every token)."""
  if route is None:
    return
  start, end = route
  for deep, shallow in mirrors(depth).items():
    if (start <= deep < end) != (start <= shallow < end):
      raise ValueError(
          f"model.long_skips joins block {shallow} to block {deep}, but model.route_blocks="
          f"{route} routes only one of them; route a span symmetric about the middle, e.g. "
          f"({depth // 2 - 1}, {depth - depth // 2 + 1})")


def _identity_on_first_half(key, shape, dtype):
  """Kernel [2D, D] = [I; 0]: the join passes the residual stream through and ignores the skip."""
  del key
  dim = shape[1]
  return jnp.concatenate([jnp.eye(dim, dtype=dtype), jnp.zeros((dim, dim), dtype)], axis=0)


class SkipJoin(nnx.Module):
  """h, skip [B, N, D] -> Linear(concat(h, skip)) [B, N, D]."""

  def __init__(self, dim, rngs, *, dtype, param_dtype):
    self.proj = nnx.Linear(
        2 * dim, dim, dtype=dtype, param_dtype=param_dtype, rngs=rngs,
        kernel_init=nnx.with_partitioning(_identity_on_first_half, (None, "embed")),
        bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), ("embed",)))

  def __call__(self, h, skip):
    return self.proj(jnp.concatenate([h, skip.astype(h.dtype)], axis=-1))
