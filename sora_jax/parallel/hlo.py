"""What a sharded program costs a device: state bytes from shardings, collectives and memory of a
compiled step. Reads shapes and HLO text only, so it works for any backend, including a TPU
topology compiled ahead of time on a CPU host."""

import math
import re

import jax
import numpy as np

COLLECTIVES = ("all-gather", "reduce-scatter", "all-reduce", "all-to-all", "collective-permute")

# `%name = <result shape> <opcode>(` in XLA's HLO text. An async collective appears as
# <op>-start / <op>-done: the -done carries the result, so -start is left out.
_INSTRUCTION = re.compile(
    r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*(?P<shape>.+?)\s+(?P<op>" + "|".join(COLLECTIVES) +
    r")(?P<done>-done)?\(")
# One array in a result shape: `bf16[4096,512]{1,0:T(8,128)(2,1)}` or `f32[]`.
_ARRAY = re.compile(r"\b([a-z]+[0-9a-z]*)\[([0-9,]*)\]")
_BITS = {"pred": 8, "s4": 4, "u4": 4, "f4e2m1fn": 4}


def _element_bits(dtype: str) -> int:
  """Bits of an HLO element type: `bf16` -> 16, `f8e4m3fn` -> 8, `pred` -> 8."""
  if dtype in _BITS:
    return _BITS[dtype]
  found = re.match(r"[a-z]+?(\d+)", dtype)
  if not found:
    raise ValueError(f"unknown HLO element type {dtype!r}")
  return int(found.group(1))


def shape_bytes(shape: str) -> int:
  """Bytes of an HLO result shape; a tuple counts all its arrays (layouts are ignored)."""
  total = 0
  for dtype, dims in _ARRAY.findall(shape):
    if dtype == "token":
      continue
    count = math.prod(int(d) for d in dims.split(",") if d)
    total += count * _element_bits(dtype) // 8
  return total


def collectives(hlo_text: str) -> dict:
  """{op: {"count", "bytes"}} of the collectives in a compiled program's HLO text, per device.

  Bytes are each op's result size. Ops inside a loop body count once, not once per trip.
  """
  found = {op: {"count": 0, "bytes": 0} for op in COLLECTIVES}
  for line in hlo_text.splitlines():
    m = _INSTRUCTION.match(line)
    if m:
      found[m.group("op")]["count"] += 1
      found[m.group("op")]["bytes"] += shape_bytes(m.group("shape"))
  return found


def memory(compiled) -> dict | None:
  """Argument, output, alias and temp bytes per device of a compiled program (None where the
  backend does not say). peak_bytes adds them as XLA's allocator would hold them at once."""
  stats = compiled.memory_analysis()
  if stats is None:
    return None
  out = {k: int(getattr(stats, f"{k}_size_in_bytes")) for k in
         ("argument", "output", "alias", "temp", "generated_code")}
  out["peak"] = out["argument"] + out["output"] - out["alias"] + out["temp"]
  return out


def shard_bytes(shape, dtype, sharding) -> int:
  """Bytes one device holds of an array of `shape` laid out by `sharding` (the largest shard)."""
  try:
    local = sharding.shard_shape(tuple(shape))
  except ValueError:  # an axis that does not divide: XLA pads it, the largest shard is the ceil
    spec = tuple(sharding.spec) + (None,) * (len(shape) - len(sharding.spec))
    local = [-(-n // _axis_size(sharding.mesh, e)) for n, e in zip(shape, spec)]
  return math.prod(local) * np.dtype(dtype).itemsize


def _axis_size(mesh, entry) -> int:
  names = () if entry is None else (entry if isinstance(entry, tuple) else (entry,))
  return math.prod(mesh.shape[a] for a in names)


def tree_bytes(abstract, shardings) -> tuple[int, int]:
  """(global bytes, bytes per device) of a tree of ShapeDtypeStructs under a matching tree of
  shardings."""
  total = sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(abstract))
  local = jax.tree.map(lambda x, s: shard_bytes(x.shape, x.dtype, s), abstract, shardings)
  return total, sum(jax.tree.leaves(local))
