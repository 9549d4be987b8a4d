"""Spacetime patches: a video [B, T, H, W, C] <-> tokens [B, N, pt*ph*pw*C] with (t, h, w) coordinates.

Patches are what lets one model see images (T = 1 with pt = 1) and videos of any size: the
transformer only ever sees a token sequence and each token's grid coordinates.
"""

import jax.numpy as jnp
import numpy as np


def check_divisible(frames: int, height: int, width: int, patch) -> None:
  """Raises a clear ValueError when a clip does not split into whole patches."""
  pt, ph, pw = patch
  for name, size, p in (("frames", frames, pt), ("height", height, ph), ("width", width, pw)):
    if size <= 0 or size % p:
      raise ValueError(f"{name}={size} is not a positive multiple of the patch size {p} "
                       f"(patch (pt, ph, pw) = {tuple(patch)})")


def grid_shape(video_shape, patch) -> tuple[int, int, int]:
  """(T', H', W') patch grid of a [B, T, H, W, C] video."""
  _, t, h, w, _ = video_shape
  check_divisible(t, h, w, patch)
  return t // patch[0], h // patch[1], w // patch[2]


def patchify(video, patch):
  """[B, T, H, W, C] -> [B, T'*H'*W', pt*ph*pw*C], tokens in (t, h, w) raster order."""
  b, _, _, _, c = video.shape
  gt, gh, gw = grid_shape(video.shape, patch)
  pt, ph, pw = patch
  x = video.reshape(b, gt, pt, gh, ph, gw, pw, c)
  x = x.transpose(0, 1, 3, 5, 2, 4, 6, 7)  # [B, T', H', W', pt, ph, pw, C]
  return x.reshape(b, gt * gh * gw, pt * ph * pw * c)


def unpatchify(tokens, patch, grid, channels: int):
  """Inverse of `patchify`: [B, N, pt*ph*pw*C] -> [B, T, H, W, C]."""
  b = tokens.shape[0]
  gt, gh, gw = grid
  pt, ph, pw = patch
  x = tokens.reshape(b, gt, gh, gw, pt, ph, pw, channels)
  x = x.transpose(0, 1, 4, 2, 5, 3, 6, 7)  # [B, T', pt, H', ph, W', pw, C]
  return x.reshape(b, gt * pt, gh * ph, gw * pw, channels)


def grid_coords(grid) -> jnp.ndarray:
  """Integer (t, h, w) coordinates of every token, [N, 3], in patchify's order."""
  gt, gh, gw = grid
  t, h, w = np.meshgrid(np.arange(gt), np.arange(gh), np.arange(gw), indexing="ij")
  return jnp.asarray(np.stack([t, h, w], axis=-1).reshape(-1, 3), jnp.int32)
