"""A byte-level text encoder trained with the DiT: any UTF-8 prompt, no vocabulary file."""

import jax
import jax.numpy as jnp
from flax import nnx

from sora_jax.data import tokenizer
from sora_jax.models import layers


_HASH_MULT = 0x01000193  # FNV prime: the per-byte multiplier of the rolling word hash


def _affine_scan(a, b, reverse=False):
  """h[i] = a[i] * h[i-1] + b[i] (h[i+1] if reverse) along axis 1, h = 0 outside: uint32 maths
  wraps mod 2**32, which keeps the composition of these maps associative."""
  def compose(first, second):
    return second[0] * first[0], second[0] * first[1] + second[1]
  return jax.lax.associative_scan(compose, (a, b), axis=1, reverse=reverse)[1]


def word_buckets(tokens, buckets: int):
  """Token ids [B, L] -> int32 [B, L]: for each byte of a word (ASCII letters and digits, case
  folded, and non-ASCII bytes) 1 + hash(word) % buckets, else 0 (spaces, punctuation, BOS, PAD).

  Every byte of "left" then carries the same id and "right" another: the hashing trick
  (fastText), so a word is one vector from the first step, where bytes alone must first learn
  to tell "left" from "right" through attention.
  """
  byte = tokens.astype(jnp.int32) - tokenizer.BYTE_OFFSET
  upper = (byte >= ord("A")) & (byte <= ord("Z"))
  byte = jnp.where(upper, byte + 32, byte)  # case folding
  lower = (byte >= ord("a")) & (byte <= ord("z"))
  digit = (byte >= ord("0")) & (byte <= ord("9"))
  in_word = (lower | digit | (byte >= 128)) & (tokens >= tokenizer.BYTE_OFFSET)
  w = in_word.astype(jnp.uint32)
  prefix = _affine_scan(w * _HASH_MULT, w * (byte.astype(jnp.uint32) + 1))  # hash so far
  ends = in_word & ~jnp.pad(in_word[:, 1:], ((0, 0), (0, 1)))  # last byte of each word
  e = ends.astype(jnp.uint32)
  whole = _affine_scan(w * (1 - e), e * prefix, reverse=True)  # the word's hash, at every byte
  return jnp.where(in_word, (whole % buckets).astype(jnp.int32) + 1, 0)


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
    self.word_buckets = cfg.get("text_word_buckets", 0)
    self.word_embed = nnx.Embed(
        self.word_buckets + 1, width, dtype=dtype, param_dtype=param_dtype, rngs=rngs,
        embedding_init=nnx.with_partitioning(nnx.initializers.normal(0.02), ("vocab", "embed"))
    ) if self.word_buckets else None
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
    if self.word_embed is not None:
      x = x + self.word_embed(word_buckets(tokens, self.word_buckets))
    for block in self.blocks:
      x = block(x, mask)
    x = self.proj(self.norm(x))  # [B, L, out_dim]
    weights = mask[..., None].astype(x.dtype)
    pooled = (x * weights).sum(1) / jnp.maximum(weights.sum(1), 1.0)
    return x, mask, pooled
