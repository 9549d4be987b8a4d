"""A device Mesh from config sizes: `data`, `fsdp`, `tensor`, `sequence` (-1 = the rest)."""

import math

import jax
import numpy as np

AXES = ("data", "fsdp", "tensor", "sequence")


def mesh_shape(mesh_cfg, num_devices: int) -> tuple[int, ...]:
  """Resolves the configured axis sizes (one may be -1) against the device count."""
  sizes = [int(mesh_cfg[a]) for a in AXES]
  if any(s == 0 or s < -1 for s in sizes) or sizes.count(-1) > 1:
    raise ValueError(
        f"mesh sizes {dict(zip(AXES, sizes))}: each must be a positive integer, "
        "and at most one may be -1 (all remaining devices)")
  known = math.prod(s for s in sizes if s != -1)
  if -1 in sizes:
    if num_devices % known:
      raise ValueError(f"mesh {dict(zip(AXES, sizes))}: {num_devices} devices "
                       f"are not divisible by {known}")
    sizes[sizes.index(-1)] = num_devices // known
  if math.prod(sizes) != num_devices:
    raise ValueError(f"mesh {dict(zip(AXES, sizes))} needs {math.prod(sizes)} "
                     f"devices, but {num_devices} are available")
  return tuple(sizes)


def make_mesh(mesh_cfg, devices=None) -> jax.sharding.Mesh:
  """The Mesh for `mesh_cfg`; axes use automatic (GSPMD) sharding propagation."""
  devices = jax.devices() if devices is None else list(devices)
  shape = mesh_shape(mesh_cfg, len(devices))
  return jax.sharding.Mesh(
      np.asarray(devices).reshape(shape), AXES,
      axis_types=(jax.sharding.AxisType.Auto,) * len(AXES))
