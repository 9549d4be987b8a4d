"""Sequence (context) parallel self-attention for long videos, DeepSpeed-Ulysses style.

Tokens of a long clip are split over the mesh axis that the logical name `tokens` maps to
(`sequence` by default). Attention needs every token, so inside a shard_map one all-to-all trades
the token split for a head split ([B, N/S, H, D] -> [B, N, H/S, D]), each device attends over all
tokens for its heads, and a second all-to-all trades back. The specs come from the active
logical-axis rules, so batch (`data`, `fsdp`) and heads (`tensor`) sharding compose with it.
"""

import math

import flax.linen as nn
import jax
from jax.sharding import PartitionSpec as P

# q / k / v / output of attention: [batch, tokens, heads, head dim]
AXES = ("batch", "tokens", "heads", "kv")


def _axes(entry) -> tuple:
  """A PartitionSpec entry (None, a name or a tuple of names) as a tuple of names."""
  if entry is None:
    return ()
  return tuple(entry) if isinstance(entry, (tuple, list)) else (entry,)


def _size(mesh, entry) -> int:
  return math.prod(mesh.shape[a] for a in _axes(entry))


def _fit(spec, shape, mesh, keep: int) -> P:
  """`spec` with the mesh axes of dims they do not divide dropped (those dims replicated), as
  GSPMD would pad them; dim `keep` (the tokens) is left for the caller to check."""
  return P(*(e if i == keep or n % _size(mesh, e) == 0 else None
             for i, (e, n) in enumerate(zip(spec, shape))))


def sequence_spec(shape):
  """(mesh, PartitionSpec of q/k/v, token axes) under the active mesh and rules, or None when
  tokens are not split (no mesh, no rules, or a token axis of size 1): plain attention then."""
  rules = nn.get_logical_axis_rules()
  mesh = jax.sharding.get_abstract_mesh()
  if not rules or mesh.empty:
    return None
  spec = nn.logical_to_mesh_axes(AXES, rules)
  if _size(mesh, spec[1]) == 1:
    return None
  return mesh, _fit(spec, shape, mesh, keep=1), _axes(spec[1])


def ulysses_attention(q, k, v):
  """Self-attention q, k, v [B, N, H, D] -> [B, N, H, D], sequence parallel over the mesh axes
  of `tokens` (all-to-all over heads); full attention when tokens are not split."""
  found = sequence_spec(q.shape)
  if found is None:
    return jax.nn.dot_product_attention(q, k, v)
  mesh, spec, seq = found
  seq_size, (_, tokens, heads, _) = _size(mesh, seq), q.shape
  if tokens % seq_size:
    raise ValueError(f"ulysses attention: {tokens} tokens do not split over the {seq_size} "
                     f"devices of mesh axes {seq}")
  local_heads = heads // _size(mesh, spec[2])
  if local_heads % seq_size:
    raise ValueError(
        f"ulysses attention: {local_heads} heads per device ({heads} heads over mesh axes "
        f"{_axes(spec[2]) or '()'}) are not divisible by the sequence-parallel size {seq_size} "
        f"(mesh axes {seq}); use a head count that is a multiple of {seq_size} per device")
  axis_name = seq[0] if len(seq) == 1 else seq

  def local(q, k, v):  # [B/b, N/S, H/t, D] each
    to_heads = lambda x: jax.lax.all_to_all(x, axis_name, 2, 1, tiled=True)  # [B/b, N, H/tS, D]
    out = jax.nn.dot_product_attention(to_heads(q), to_heads(k), to_heads(v))
    return jax.lax.all_to_all(out, axis_name, 1, 2, tiled=True)  # [B/b, N/S, H/t, D]

  return jax.shard_map(local, mesh=mesh, in_specs=(spec, spec, spec), out_specs=spec)(q, k, v)


IMPLS = ("full", "ulysses")


def self_attention(impl: str):
  """The self-attention function for config `model.attention`."""
  if impl == "full":
    return jax.nn.dot_product_attention
  if impl == "ulysses":
    return ulysses_attention
  raise ValueError(f"model.attention={impl!r}: allowed are {', '.join(IMPLS)}")
