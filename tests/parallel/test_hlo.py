"""Reading compiled HLO (sora_jax/parallel/hlo.py): collectives with their bytes, state bytes per
device from shardings."""

import jax
import jax.numpy as jnp
from jax.sharding import AbstractMesh, AxisType, NamedSharding, PartitionSpec as P

from sora_jax.parallel import hlo

# Lines as XLA prints them: TPU tiled layouts, a CPU tuple all-reduce, an async pair, a fusion
# that merely mentions a collective in its metadata.
HLO = """
  %all-gather.3 = bf16[4096,512]{1,0:T(8,128)(2,1)} all-gather(%param), channel_id=5, dimensions={0}
  %all-reduce.1 = (f32[256,64]{1,0}, f32[64]{0}) all-reduce(%a, %b), channel_id=6, to_apply=%add
  %ags = (f32[8]{0}, f32[64]{0}) all-gather-start(%x), dimensions={0}
  %agd = f32[64]{0} all-gather-done(%ags)
  %fusion = bf16[512,4096]{1,0} fusion(%all-gather.3), kind=kOutput, metadata={op_name="all-to-all"}
  ROOT %a2a = s8[4,16]{1,0} all-to-all(%y), dimensions={0}
  %cp = pred[10]{0} collective-permute(%z), source_target_pairs={{0,1}}
"""


def test_collectives_count_each_op_once_with_its_result_bytes():
  got = hlo.collectives(HLO)
  assert got["all-gather"] == {"count": 2, "bytes": 4096 * 512 * 2 + 64 * 4}
  assert got["all-reduce"] == {"count": 1, "bytes": (256 * 64 + 64) * 4}
  assert got["all-to-all"] == {"count": 1, "bytes": 64}
  assert got["collective-permute"] == {"count": 1, "bytes": 10}
  assert got["reduce-scatter"] == {"count": 0, "bytes": 0}


def test_shape_bytes_reads_element_types_and_tuples():
  assert hlo.shape_bytes("f32[]") == 4
  assert hlo.shape_bytes("(bf16[2,3]{1,0}, f8e4m3fn[8]{0}, s4[4]{0})") == 12 + 8 + 2


def test_state_bytes_per_device_follow_the_shardings():
  mesh = AbstractMesh((2, 4), ("data", "fsdp"), axis_types=(AxisType.Auto,) * 2)
  tree = {"w": jax.ShapeDtypeStruct((48, 192), jnp.float32),
          "b": jax.ShapeDtypeStruct((6,), jnp.bfloat16)}
  shardings = {"w": NamedSharding(mesh, P("fsdp", "data")), "b": NamedSharding(mesh, P("fsdp"))}
  total, local = hlo.tree_bytes(tree, shardings)
  assert total == 48 * 192 * 4 + 6 * 2
  # 6 does not split 4 ways: XLA pads it, the largest shard holds 2 of them.
  assert local == 48 * 192 * 4 // 8 + 2 * 2
