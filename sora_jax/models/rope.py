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


def sincos_embedding(coords, dim: int, theta: float = 10_000.0):
  """Absolute 3D sin-cos features [N, dim] of integer coords [N, 3] (DiT's 2D sincos, in 3D).

  RoPE alone makes attention translation-equivariant: a token cannot tell where on the canvas it
  is, which a small model needs to keep objects inside the frame. These features are a function
  of the coordinates, so they exist at any clip size.
  """
  per_axis = 2 * ((dim // 3) // 2)
  parts = []
  for axis in range(3):
    inv = 1.0 / theta ** (jnp.arange(per_axis // 2, dtype=jnp.float32) / (per_axis // 2))
    angles = coords[:, axis:axis + 1].astype(jnp.float32) * inv  # [N, per_axis / 2]
    parts += [jnp.sin(angles), jnp.cos(angles)]
  out = jnp.concatenate(parts, axis=-1)
  return jnp.pad(out, ((0, 0), (0, dim - out.shape[-1])))
