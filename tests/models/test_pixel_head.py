import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import default
from sora_jax.models import pixel_head
from sora_jax.models.dit import VideoDiT
from tests.models.test_dit import randomized

PATCH, GRID = (2, 4, 4), (2, 4, 4)  # a [B, 4, 16, 16, C] clip


def random_head(num_layers=3):
  return randomized(pixel_head.PixelHead(7, 3, 32, hidden=8, num_layers=num_layers,
                                         rngs=nnx.Rngs(0), dtype=jnp.float32,
                                         param_dtype=jnp.float32))


def head_inputs(key):
  k1, k2, k3 = jax.random.split(key, 3)
  return (jax.random.normal(k1, (1, 4, 16, 16, 7)), jax.random.normal(k2, (1, 4, 16, 16, 3)),
          jax.random.normal(k3, (1, 32, 32)))


def test_a_pixel_changes_only_its_frame_within_the_receptive_field():
  """Three 3x3 convs per frame: an input pixel reaches outputs of its own frame at most 3 px
  away, and its own output pixel; the token bias is the same for every pixel of a patch."""
  head = random_head()
  inputs, coarse, tokens = head_inputs(jax.random.key(0))
  base = head(coarse, inputs, tokens, PATCH, GRID)
  moved = head(coarse, inputs.at[0, 1, 8, 8].add(1.0), tokens, PATCH, GRID)
  changed = np.asarray(jnp.abs(moved - base).max(-1)[0]) > 1e-6  # [T, H, W]
  assert changed[1, 8, 8]
  t, y, x = np.nonzero(changed)
  assert set(t) == {1} and np.abs(y - 8).max() == 3 and np.abs(x - 8).max() == 3


def test_token_features_reach_exactly_their_patch_and_its_border():
  head = random_head(num_layers=2)
  inputs, coarse, tokens = head_inputs(jax.random.key(1))
  base = head(coarse, inputs, tokens, PATCH, GRID)
  token = 0 * 16 + 1 * 4 + 2  # grid (0, 1, 2): frames 0-1, rows 4-7, columns 8-11
  moved = head(coarse, inputs, tokens.at[0, token].add(1.0), PATCH, GRID)
  changed = np.asarray(jnp.abs(moved - base).max(-1)[0]) > 1e-6
  t, y, x = np.nonzero(changed)
  assert set(t) == {0, 1}
  assert (y.min(), y.max(), x.min(), x.max()) == (3, 8, 7, 12)  # the patch +- one conv's reach


def test_flops_count_the_head_convs_weight_by_weight():
  """A 3x3 conv does as many multiply-adds per output pixel as it has weights."""
  cfg = default.get_config().model
  cfg.update(width=32, depth=1, num_heads=2, patch=PATCH, text_width=16, text_depth=1,
             text_heads=2, known_frames=True, pixel_head=8)
  model = VideoDiT(cfg, text_len=8, rngs=nnx.Rngs(0))
  convs = list(model.pixel_head.convs) + [model.pixel_head.out]
  assert pixel_head.macs_per_pixel(cfg) == sum(conv.w[...].size for conv in convs)
  cfg.pixel_head = 0
  assert pixel_head.macs_per_pixel(cfg) == 0


def test_fewer_than_two_layers_is_refused():
  with pytest.raises(ValueError, match="pixel_head_layers must be >= 2, got 1"):
    random_head(num_layers=1)
