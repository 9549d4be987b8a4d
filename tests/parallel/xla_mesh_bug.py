"""Standalone repro: on a data=2 x fsdp=2 x tensor=2 CPU mesh, jax/jaxlib 0.10.2 computes a wrong
value for a small DiT-block-like function; every other mesh tried matches one device.

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/parallel/xla_mesh_bug.py

Sharding annotations must not change results, so this is below sora_jax (it fails the same with
the Shardy and the GSPMD partitioner, at -O0 and default optimisation). Likely related:
openxla/xla#40034 (an all-reduce missing after resharding). Exit code 1 while the bug is there.
"""

import os
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

# pylint: disable=wrong-import-position
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

D, MESHES = 48, ((1, 4, 2), (4, 1, 2), (2, 4, 1), (2, 2, 2))


def loss(w, x, text, c, target):
  """Cross-attention to text, adaLN-modulated GELU MLP, output projection: x [B, N, D]."""
  q, k, v = x @ w["q"], text @ w["k"], text @ w["v"]
  x = x + jax.nn.softmax(jnp.einsum("bnd,bld->bnl", q, k), -1) @ v @ w["o"]
  shift, scale = jnp.split(jax.nn.silu(c) @ w["ada"], 2, -1)  # [B, G, D]: one per token group
  repeat = lambda a: jnp.repeat(a, x.shape[1] // c.shape[1], axis=1)
  h = x * (1 + repeat(scale)) + repeat(shift)
  x = x + jax.nn.gelu(h @ w["up"]) @ w["down"]
  return jnp.mean((x @ w["final"] - target) ** 2)


def main() -> int:
  shapes = {"q": (D, D), "k": (D, D), "v": (D, D), "o": (D, D), "ada": (D, 2 * D),
            "up": (D, 4 * D), "down": (4 * D, D), "final": (D, 384)}
  specs = {"ada": P("fsdp", "tensor"), "up": P("fsdp", "tensor"), "down": P("tensor", "fsdp")}
  keys = iter(jax.random.split(jax.random.key(0), 16))
  w = {n: jax.random.normal(next(keys), s) / np.sqrt(s[0]) for n, s in shapes.items()}
  data = (jax.random.normal(next(keys), (8, 8, D)), jax.random.normal(next(keys), (8, 33, D)),
          jax.random.normal(next(keys), (8, 2, D)), jax.random.normal(next(keys), (8, 8, 384)))
  want = float(jax.jit(loss)(w, *data))
  wrong = False
  for shape in MESHES:
    mesh = Mesh(np.array(jax.devices()[:int(np.prod(shape))]).reshape(shape),
                ("data", "fsdp", "tensor"), axis_types=(AxisType.Auto,) * 3)
    w_sh = {n: NamedSharding(mesh, specs.get(n, P())) for n in w}
    batch = NamedSharding(mesh, P(("data", "fsdp")))
    got = float(jax.jit(loss, in_shardings=(w_sh,) + (batch,) * 4)(w, *data))
    err = abs(got - want) / abs(want)
    wrong |= err > 1e-5
    print(f"data={shape[0]} fsdp={shape[1]} tensor={shape[2]}: relative error {err:.1e}")
  return int(wrong)


if __name__ == "__main__":
  sys.exit(main())
