"""Standalone repro: on a data=2 x fsdp=2 x tensor=2 CPU mesh, jax/jaxlib 0.10.2 computes a wrong
value for ONE matmul; every other mesh tried matches one device.

  python tests/parallel/xla_mesh_bug.py          # sets XLA_FLAGS for 8 fake CPU devices itself
  python tests/parallel/xla_mesh_bug.py --hlo    # also prints the partitioned program

y = x @ w with x [B, K] split P(("data", "fsdp"), "tensor"), w [K, N] split P("tensor", "fsdp")
and y split P(("data", "fsdp"), "tensor"). The SPMD partitioner (the same with Shardy and GSPMD)
all-gathers w over fsdp, but first collective-permutes x between devices 2<->4 and 3<->5 (batch
rows from (data, fsdp) order to (fsdp, data) order) and never permutes the product back, so
those four devices hold each other's rows of y. In a model this is a row-parallel projection
(kernel (mlp|heads, embed) -> (tensor, fsdp)) whose output, or the input gradient of a
column-parallel one, picks up (batch, tensor) sharding. Constraining that output to
P(("data", "fsdp"), None) avoids it. Exit code 1 while the bug is there.
"""

import os
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

# pylint: disable=wrong-import-position
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

MESHES = ((1, 4, 2), (4, 1, 2), (2, 4, 1), (2, 2, 2))
BATCH = ("data", "fsdp")


def main() -> int:
  rng = np.random.RandomState(0)
  x, w = rng.randn(8, 4).astype(np.float32), rng.randn(4, 4).astype(np.float32)
  want = x @ w
  wrong = False
  for shape in MESHES:
    mesh = Mesh(np.array(jax.devices()[:int(np.prod(shape))]).reshape(shape),
                ("data", "fsdp", "tensor"), axis_types=(AxisType.Auto,) * 3)
    sh = lambda *spec, m=mesh: NamedSharding(m, P(*spec))
    f = jax.jit(lambda x, w: x @ w, in_shardings=(sh(BATCH, "tensor"), sh("tensor", "fsdp")),
                out_shardings=sh(BATCH, "tensor"))
    err = float(np.abs(np.asarray(f(x, w)) - want).max() / np.abs(want).max())
    wrong |= err > 1e-5
    print(f"data={shape[0]} fsdp={shape[1]} tensor={shape[2]}: relative error {err:.1e}")
    if "--hlo" in sys.argv and shape == (2, 2, 2):
      print(f.lower(x, w).compile().as_text())
  return int(wrong)


if __name__ == "__main__":
  sys.exit(main())
