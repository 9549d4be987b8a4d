"""Token routing (models/routing.py): which tokens the routed blocks see, and what skips them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from sora_jax.data import tokenizer
from sora_jax.models import flops, routing
from sora_jax.models.dit import VideoDiT
from tests.models.test_dit import randomized, small_model_cfg

TEXT = jnp.asarray(tokenizer.encode_batch(["a red circle", "a blue square"], 16))


def test_pick_draws_the_same_share_of_every_group_in_order():
  idx = np.asarray(routing.pick(jax.random.key(0), 3, 4, 16, 0.25))
  assert idx.shape == (3, 16)
  groups = idx.reshape(3, 4, 4)
  for g in range(4):  # each group's 4 tokens come from its own 16, distinct and ascending
    assert ((groups[:, g] >= 16 * g) & (groups[:, g] < 16 * (g + 1))).all()
  assert (np.diff(idx, axis=1) > 0).all()
  assert not (idx[0] == idx[1]).all()  # each clip draws its own
  other = np.asarray(routing.pick(jax.random.key(1), 3, 4, 16, 0.25))
  assert not (idx == other).all()


def test_gather_then_scatter_restores_the_sequence():
  x = jax.random.normal(jax.random.key(0), (2, 8, 5))
  idx = routing.pick(jax.random.key(1), 2, 2, 4, 0.5)
  np.testing.assert_array_equal(routing.scatter(x, routing.gather(x, idx), idx), x)
  shared = jnp.arange(8.0)[:, None] * jnp.ones((8, 3))  # [N, D] rows shared by the batch
  np.testing.assert_array_equal(routing.gather(shared, idx)[..., 0], idx)


def routed_cfg(blocks, keep=0.5):
  cfg = small_model_cfg()  # patch (2, 4, 4): a 4 x 16 x 16 clip is 2 groups of 16 tokens
  cfg.route_blocks, cfg.route_keep = blocks, keep
  return cfg


def routed_model(blocks, keep=0.5):
  return randomized(VideoDiT(routed_cfg(blocks, keep), text_len=16, rngs=nnx.Rngs(0)))


def test_keeping_every_token_is_the_unrouted_model():
  model = routed_model((0, 2), keep=0.99)  # round(0.99 * 16) = 16: nothing skips
  x, t = jax.random.normal(jax.random.key(2), (2, 4, 16, 16, 3)), jnp.array([0.3, 0.8])
  np.testing.assert_allclose(model(x, t, TEXT, route_key=jax.random.key(3)), model(x, t, TEXT),
                             rtol=1e-5, atol=1e-6)


def test_skipping_tokens_neither_see_nor_are_seen_through_the_route():
  """Routed through every block, a kept token's output depends only on kept tokens' inputs, and
  a skipping token's output only on its own patch; unrouted, every token sees every other."""
  model, key = routed_model((0, 2)), jax.random.key(3)
  x, t = jax.random.normal(jax.random.key(2), (2, 4, 16, 16, 3)), jnp.array([0.3, 0.8])
  kept = np.asarray(routing.pick(key, 2, 2, 16, 0.5))[0]
  skipped = np.setdiff1d(np.arange(32), kept)

  def token_outputs(video, route_key):
    out = model(video, t, TEXT, route_key=route_key)[0]  # clip 0: [4, 16, 16, 3]
    return out.reshape(2, 2, 4, 4, 4, 4, 3).transpose(0, 2, 4, 1, 3, 5, 6).reshape(32, -1)

  def poked(token):  # clip 0's video with one token's patch changed
    gt, rest = divmod(int(token), 16)
    gh, gw = divmod(rest, 4)
    return x.at[0, 2 * gt:2 * gt + 2, 4 * gh:4 * gh + 4, 4 * gw:4 * gw + 4].add(1.0)

  base = token_outputs(x, key)
  after_skip = token_outputs(poked(skipped[0]), key)
  np.testing.assert_allclose(after_skip[kept], base[kept], atol=1e-6)
  assert np.abs(after_skip[skipped[0]] - base[skipped[0]]).max() > 1e-3
  after_kept = token_outputs(poked(kept[0]), key)
  np.testing.assert_allclose(after_kept[skipped], base[skipped], atol=1e-6)
  assert np.abs(after_kept[kept[1:]] - base[kept[1:]]).max() > 1e-3
  unrouted = token_outputs(poked(skipped[0]), None) - token_outputs(x, None)
  assert np.abs(unrouted[kept]).max() > 1e-3


def test_routed_training_flops_match_xla_cost_analysis():
  model = routed_model((1, 2))
  graphdef, params = nnx.split(model)
  x, t = jnp.ones((1, 4, 16, 16, 3)), jnp.array([0.5])
  fn = lambda p: nnx.merge(graphdef, p)(x, t, TEXT[:1], route_key=jax.random.key(0))
  xla = jax.jit(fn).lower(params).compile().cost_analysis()["flops"]
  clip = dict(frames=4, height=16, width=16, text_len=16)
  ours = flops.forward_flops(routed_cfg((1, 2)), routed=True, **clip)
  assert 0.8 < ours / xla < 1.1, (ours, xla)
  assert ours < 0.85 * flops.forward_flops(routed_cfg((1, 2)), **clip)  # a block on half


@pytest.mark.parametrize("blocks, keep, match", [
    ((1, 1), 0.5, "0 <= start < end"), ((0, 3), 0.5, "depth=2"), ((1,), 0.5, "start, end"),
    ((0, 1), 1.5, "route_keep"), ((0, 1), 0.0, "route_keep")])
def test_bad_routes_rejected(blocks, keep, match):
  with pytest.raises(ValueError, match=match):
    routed_model(blocks, keep)


@pytest.mark.parametrize("cfg", [small_model_cfg(), routed_cfg((0, 1), keep=1.0)],
                         ids=["no_blocks", "every_token_kept"])
def test_route_key_without_a_route_rejected(cfg):
  model = VideoDiT(cfg, text_len=16, rngs=nnx.Rngs(0))
  assert model.route is None
  with pytest.raises(ValueError, match="without model.route_blocks"):
    model(jnp.ones((1, 4, 16, 16, 3)), jnp.array([0.5]), TEXT[:1], route_key=jax.random.key(0))
