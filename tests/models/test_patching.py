import numpy as np
import pytest

from sora_jax.models import patching


@pytest.mark.parametrize("patch", [(1, 1, 1), (2, 4, 4), (1, 8, 4), (4, 2, 8)])
def test_patchify_round_trip(patch):
  video = np.random.default_rng(0).normal(size=(2, 8, 16, 24, 3)).astype(np.float32)
  tokens = patching.patchify(video, patch)
  grid = patching.grid_shape(video.shape, patch)
  assert tokens.shape == (2, np.prod(grid), np.prod(patch) * 3)
  np.testing.assert_array_equal(patching.unpatchify(tokens, patch, grid, 3), video)


def test_token_holds_its_patch_and_coords_match():
  video = np.arange(1 * 4 * 4 * 8 * 1, dtype=np.float32).reshape(1, 4, 4, 8, 1)
  patch = (2, 2, 4)
  tokens = np.asarray(patching.patchify(video, patch))
  coords = np.asarray(patching.grid_coords(patching.grid_shape(video.shape, patch)))
  for n, (t, h, w) in enumerate(coords):
    block = video[0, 2 * t:2 * t + 2, 2 * h:2 * h + 2, 4 * w:4 * w + 4, :]
    np.testing.assert_array_equal(tokens[0, n], block.reshape(-1))


def test_indivisible_sizes_rejected():
  with pytest.raises(ValueError, match="height=30 is not a positive multiple of the patch size 4"):
    patching.check_divisible(16, 30, 32, (2, 4, 4))
