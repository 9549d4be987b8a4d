"""3D rotary position embedding over (t, h, w) token coordinates.

The head dimension is split into three parts, one per axis; each part rotates by its own
coordinate, so attention sees relative offsets in time and space at any clip size.
"""

import jax.numpy as jnp


def axis_dims(head_dim: int) -> tuple[int, int, int]:
  """Head-dim split for (t, h, w): even sizes, time gets the remainder."""
  if head_dim % 2 or head_dim < 6:
    raise ValueError(f"head_dim={head_dim}: 3D RoPE needs an even head dimension >= 6")
  spatial = 2 * (head_dim // 6)
  return head_dim - 2 * spatial, spatial, spatial


def frequencies(coords, head_dim: int, theta: float):
  """Angles [..., N, head_dim // 2] for integer coords [..., N, 3]."""
  parts = []
  for axis, dim in enumerate(axis_dims(head_dim)):
    inv = 1.0 / theta ** (jnp.arange(0, dim, 2, dtype=jnp.float32) / dim)  # [dim/2]
    parts.append(coords[..., axis:axis + 1].astype(jnp.float32) * inv)
  return jnp.concatenate(parts, axis=-1)


def apply_rope(x, angles):
  """Rotates x [B, N, heads, head_dim] by angles [N or B x N, head_dim // 2] (pairs interleaved halves)."""
  if angles.ndim == 2:
    angles = angles[None]
  cos = jnp.cos(angles)[:, :, None, :]
  sin = jnp.sin(angles)[:, :, None, :]
  x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  out = jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
  return out.astype(x.dtype)
