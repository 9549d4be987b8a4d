"""A byte-level text encoder trained with the DiT: any UTF-8 prompt, no vocabulary file."""

import jax.numpy as jnp
from flax import nnx

from sora_jax.data import tokenizer
from sora_jax.models import layers


class TextBlock(nnx.Module):
  """Pre-LN transformer layer over caption tokens with a key-padding mask."""

  def __init__(self, dim, num_heads, rngs, *, dtype, param_dtype):
    kw = dict(dtype=dtype, param_dtype=param_dtype)
    self.norm1 = layers.layer_norm(dim, rngs, affine=True, param_dtype=param_dtype)
    self.attn = layers.Attention(dim, num_heads, rngs, **kw)
    self.norm2 = layers.layer_norm(dim, rngs, affine=True, param_dtype=param_dtype)
    self.mlp = layers.Mlp(dim, 4 * dim, rngs, **kw)

  def __call__(self, x, mask):
    x = x + self.attn(self.norm1(x), context=self.norm1(x), mask=mask)
    return x + self.mlp(self.norm2(x))


class TextEncoder(nnx.Module):
  """Bytes [B, L] -> token features [B, L, out_dim], their mask, and a pooled vector [B, out_dim]."""

  def __init__(self, cfg, length, out_dim, rngs, *, dtype, param_dtype):
    width = cfg.text_width
    self.embed = nnx.Embed(
        tokenizer.VOCAB_SIZE, width, dtype=dtype, param_dtype=param_dtype, rngs=rngs,
        embedding_init=nnx.with_partitioning(nnx.initializers.normal(0.02), ("vocab", "embed")))
    self.pos = nnx.Param(nnx.with_partitioning(nnx.initializers.normal(0.02), (None, "embed"))(
        rngs.params(), (length, width), param_dtype))
    self.blocks = nnx.List([
        TextBlock(width, cfg.text_heads, rngs, dtype=dtype, param_dtype=param_dtype)
        for _ in range(cfg.text_depth)])
    self.norm = layers.layer_norm(width, rngs, affine=True, param_dtype=param_dtype)
    self.proj = layers.dense(width, out_dim, ("embed", None), rngs, dtype=dtype,
                             param_dtype=param_dtype)

  def __call__(self, tokens):
    length = self.pos.shape[0]
    if tokens.shape[1] != length:
      raise ValueError(f"text has {tokens.shape[1]} tokens; this model was built for {length}")
    mask = tokens != tokenizer.PAD_ID  # [B, L]; BOS is never padding
    x = self.embed(tokens) + self.pos[...].astype(self.embed.dtype or jnp.float32)
    for block in self.blocks:
      x = block(x, mask)
    x = self.proj(self.norm(x))  # [B, L, out_dim]
    weights = mask[..., None].astype(x.dtype)
    pooled = (x * weights).sum(1) / jnp.maximum(weights.sum(1), 1.0)
    return x, mask, pooled
