"""Transformer building blocks with logical axis names on every parameter.

Parameters are annotated once here (`embed`, `mlp`, `heads`, ...); config decides which mesh axis
each name lands on. Matmuls run in `dtype`, parameters live in `param_dtype`.
"""

import math

import jax
import jax.numpy as jnp
from flax import nnx

from sora_jax.models import rope
from sora_jax.parallel import context as context_parallel
from sora_jax.parallel.rules import constrain, constrain_embed_side

_lecun = nnx.initializers.lecun_normal()
_xavier = nnx.initializers.xavier_uniform()
_zeros = nnx.initializers.zeros_init()


def dense(in_dim, out_dim, axes, rngs, *, dtype, param_dtype, zero=False, init=_xavier):
  """A Linear whose kernel is named `axes` = (in, out) and whose bias is named (out,)."""
  return nnx.Linear(
      in_dim, out_dim, dtype=dtype, param_dtype=param_dtype, rngs=rngs,
      kernel_init=nnx.with_partitioning(_zeros if zero else init, axes),
      bias_init=nnx.with_partitioning(_zeros, (axes[1],)))


def layer_norm(dim, rngs, *, affine=False, param_dtype=jnp.float32):
  """LayerNorm in float32; without affine parameters when adaLN supplies scale and shift."""
  return nnx.LayerNorm(
      dim, epsilon=1e-6, use_scale=affine, use_bias=affine, dtype=jnp.float32,
      param_dtype=param_dtype, rngs=rngs,
      scale_init=nnx.with_partitioning(nnx.initializers.ones_init(), ("embed",)),
      bias_init=nnx.with_partitioning(_zeros, ("embed",)))


def per_token(v, num_tokens: int):
  """Conditioning [B, D] (one per example) or [B, G, D] (one per group of consecutive tokens,
  e.g. a frame group with its own noise level) -> broadcastable against tokens [B, N, D]."""
  if v.ndim == 2:
    return v[:, None, :]
  if num_tokens % v.shape[1]:
    raise ValueError(f"{num_tokens} tokens do not split into {v.shape[1]} equal groups")
  return jnp.repeat(v, num_tokens // v.shape[1], axis=1)


def modulate(x, shift, scale):
  """adaLN: x * (1 + scale) + shift on tokens x [B, N, D]; shift / scale as in `per_token`."""
  n = x.shape[1]
  return x * (1 + per_token(scale, n)) + per_token(shift, n)


def timestep_embedding(t, dim: int, max_period: float = 10_000.0):
  """Sinusoidal features [..., dim] of t [...] in [0, 1] (scaled by 1000 like DDPM step indices)."""
  half = dim // 2
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
  args = 1000.0 * t.astype(jnp.float32)[..., None] * freqs
  return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


class Mlp(nnx.Module):
  """Two-layer GELU MLP; the hidden axis is `mlp` (tensor parallel)."""

  def __init__(self, dim, hidden, rngs, *, dtype, param_dtype):
    self.up = dense(dim, hidden, ("embed", "mlp"), rngs, dtype=dtype, param_dtype=param_dtype)
    self.down = dense(hidden, dim, ("mlp", "embed"), rngs, dtype=dtype, param_dtype=param_dtype)

  def __call__(self, x):
    h = jax.nn.gelu(self.up(constrain_embed_side(x)), approximate=True)
    return constrain_embed_side(self.down(constrain(h, ("batch", "tokens", "mlp"))))


class Attention(nnx.Module):
  """Multi-head attention; self-attention when `context` is None, with optional 3D RoPE.
  `impl` "ulysses" makes self-attention sequence parallel (parallel/context.py)."""

  def __init__(self, dim, num_heads, rngs, *, context_dim=None, impl="full", dtype, param_dtype):
    if dim % num_heads:
      raise ValueError(f"width {dim} is not divisible by num_heads {num_heads}")
    context_parallel.self_attention(impl)  # validates it
    self.impl = impl
    self.num_heads, self.head_dim = num_heads, dim // num_heads
    kw = dict(dtype=dtype, param_dtype=param_dtype)
    self.q = dense(dim, dim, ("embed", "heads"), rngs, **kw)
    self.k = dense(context_dim or dim, dim, ("embed", "heads"), rngs, **kw)
    self.v = dense(context_dim or dim, dim, ("embed", "heads"), rngs, **kw)
    self.out = dense(dim, dim, ("heads", "embed"), rngs, **kw)

  def _heads(self, x):
    return x.reshape(*x.shape[:2], self.num_heads, self.head_dim)  # [B, N, heads, hd]

  def __call__(self, x, *, context=None, mask=None, angles=None):
    """x [B, N, D]; context [B, L, Dc]; mask [B, L] (True = attend); angles for RoPE."""
    x = constrain_embed_side(x)
    source = x if context is None else constrain_embed_side(context)
    q, k, v = self._heads(self.q(x)), self._heads(self.k(source)), self._heads(self.v(source))
    if angles is not None:
      q, k = rope.apply_rope(q, angles), rope.apply_rope(k, angles)
    q = constrain(q, ("batch", "tokens", "heads", "kv"))
    if self.impl != "full":
      if context is not None or mask is not None:
        raise ValueError(f"{self.impl} attention is for self-attention without a mask")
      out = context_parallel.self_attention(self.impl)(q, k, v)
    else:
      mask = None if mask is None else mask[:, None, None, :]  # [B, 1, 1, L]
      out = jax.nn.dot_product_attention(q, k, v, mask=mask)  # [B, N, heads, hd]
    return constrain_embed_side(self.out(out.reshape(*x.shape[:2], -1)))
