import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import default
from sora_jax.data import tokenizer
from sora_jax.models import rope
from sora_jax.models.dit import VideoDiT


def small_model_cfg():
  m = default.get_config().model
  m.width, m.depth, m.num_heads, m.patch = 48, 2, 2, (2, 4, 4)
  m.text_width, m.text_depth, m.text_heads = 32, 1, 2
  return m


def test_shapes_and_dtypes_any_clip_size():
  model = VideoDiT(small_model_cfg(), text_len=16, rngs=nnx.Rngs(0))
  text = jnp.asarray(tokenizer.encode_batch(["a red circle", ""], 16))
  for shape in [(2, 4, 16, 16, 3), (2, 2, 8, 24, 3)]:  # video, and another aspect ratio
    out = model(jnp.ones(shape), jnp.array([0.3, 0.9]), text)
    assert out.shape == shape and out.dtype == jnp.float32


@pytest.mark.parametrize("extras", [{}, {"head_hidden": 64}, {"pixel_head": 8}])
def test_adaln_zero_starts_at_zero_output(extras):
  """Zero-initialised final layer: the untrained model predicts exactly 0 (with the GELU head
  before it, and with the pixel head after it, too)."""
  cfg = small_model_cfg()
  cfg.update(extras)
  model = VideoDiT(cfg, text_len=16, rngs=nnx.Rngs(0))
  assert (model.head is None) == ("head_hidden" not in extras)
  assert (model.pixel_head is None) == ("pixel_head" not in extras)
  text = jnp.asarray(tokenizer.encode_batch(["a red circle"], 16))
  out = model(jax.random.normal(jax.random.key(1), (1, 4, 8, 8, 3)), jnp.array([0.5]), text)
  np.testing.assert_array_equal(out, 0.0)


def test_bfloat16_activations():
  cfg = small_model_cfg()
  cfg.dtype = "bfloat16"
  model = VideoDiT(cfg, text_len=16, rngs=nnx.Rngs(0))
  text = jnp.asarray(tokenizer.encode_batch(["a"], 16))
  assert model(jnp.ones((1, 2, 8, 8, 3)), jnp.array([0.5]), text).dtype == jnp.float32
  assert model.blocks[0].mlp.up.kernel[...].dtype == jnp.float32


def test_wrong_text_length_rejected():
  model = VideoDiT(small_model_cfg(), text_len=16, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="text has 8 tokens; this model was built for 16"):
    model(jnp.ones((1, 2, 8, 8, 3)), jnp.array([0.5]), jnp.ones((1, 8), jnp.int32))


def test_rope_depends_only_on_relative_position():
  head_dim = 12
  q = jax.random.normal(jax.random.key(0), (1, 1, 1, head_dim))
  k = jax.random.normal(jax.random.key(1), (1, 1, 1, head_dim))

  def score(cq, ck):
    aq = rope.frequencies(jnp.array([cq]), head_dim, 100.0)
    ak = rope.frequencies(jnp.array([ck]), head_dim, 100.0)
    return jnp.sum(rope.apply_rope(q, aq) * rope.apply_rope(k, ak))

  base = score((1, 2, 3), (0, 0, 1))
  np.testing.assert_allclose(score((5, 7, 9), (4, 5, 7)), base, rtol=1e-4)
  assert abs(float(score((1, 2, 3), (0, 1, 1))) - float(base)) > 1e-3


@pytest.mark.parametrize("extras", [
    {}, {"known_frames": True, "head_hidden": 96}, {"long_skips": True, "depth": 4},
    {"known_frames": True, "pixel_head": 16, "self_condition": True}])
def test_analytic_flops_match_xla_cost_analysis(extras):
  from sora_jax.models import flops
  cfg = small_model_cfg()
  cfg.update(extras)
  model = VideoDiT(cfg, text_len=16, rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(model)
  x, t = jnp.ones((1, 4, 16, 16, 3)), jnp.array([0.5])
  text = jnp.asarray(tokenizer.encode_batch(["a"], 16))
  fn = lambda p: nnx.merge(graphdef, p)(x, t, text)
  xla = jax.jit(fn).lower(params).compile().cost_analysis()["flops"]
  ours = flops.forward_flops(cfg, frames=4, height=16, width=16, text_len=16)
  assert 0.8 < ours / xla < 1.1, (ours, xla)  # XLA also counts norms, softmax, GELU


def randomized(model):
  """The model with every parameter (zero-initialised ones too) drawn at random."""
  graphdef, params = nnx.split(model, nnx.Param)
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(7), len(leaves))
  leaves = [0.1 * jax.random.normal(k, p.shape, p.dtype) for k, p in zip(keys, leaves)]
  return nnx.merge(graphdef, jax.tree.unflatten(treedef, leaves))


def test_per_frame_times_condition_each_temporal_patch():
  """t [B] and the same t per frame [B, T] agree; a different level for one frame group
  changes the prediction; per-frame times must cover every frame."""
  model = randomized(VideoDiT(small_model_cfg(), text_len=16, rngs=nnx.Rngs(0)))  # pt = 2
  text = jnp.asarray(tokenizer.encode_batch(["a red circle"], 16))
  x = jax.random.normal(jax.random.key(1), (1, 4, 8, 8, 3))
  shared = model(x, jnp.array([0.5]), text)
  np.testing.assert_allclose(model(x, jnp.full((1, 4), 0.5), text), shared, rtol=1e-5, atol=1e-6)
  staggered = model(x, jnp.array([[0.1, 0.1, 0.5, 0.5]]), text)
  assert float(jnp.max(jnp.abs(staggered - shared))) > 1e-3
  with pytest.raises(ValueError, match="frame times"):
    model(x, jnp.full((1, 3), 0.5), text)


@pytest.mark.parametrize("extras", [{}, {"head_hidden": 128}, {"pixel_head": 8}])
def test_output_heads_lift_the_width_rank_limit_of_output_patches(extras):
  """Patches of 2 x 4 x 4 x 3 = 96 numbers from width 48: a linear output layer draws them all
  from a 48-dim affine subspace (rank <= 49 with its bias); the GELU head does not, nor does
  the pixel head, which adds a correction drawn from the pixels themselves."""
  cfg = small_model_cfg()
  cfg.update(extras)
  model = randomized(VideoDiT(cfg, text_len=16, rngs=nnx.Rngs(0)))
  text = jnp.asarray(tokenizer.encode_batch(["a red circle"] * 8, 16))
  x = jax.random.normal(jax.random.key(2), (8, 4, 16, 16, 3))
  out = model(x, jnp.linspace(0.1, 0.9, 8), text)
  from sora_jax.models import patching
  patches = patching.patchify(out, cfg.patch).reshape(-1, 96)  # 8 x 32 token outputs
  s = np.linalg.svd(np.asarray(patches, np.float64), compute_uv=False)
  rank = int((s > 1e-6 * s[0]).sum())
  assert rank <= 49 if not extras else rank > 60, rank


def test_self_conditioning_estimate_is_an_input():
  """With model.self_condition the previous x0 estimate changes the prediction, None means
  zeros; a model built without it refuses one."""
  cfg = small_model_cfg()
  cfg.self_condition = True
  model = randomized(VideoDiT(cfg, text_len=16, rngs=nnx.Rngs(0)))
  text = jnp.asarray(tokenizer.encode_batch(["a red circle"], 16))
  x, t = jax.random.normal(jax.random.key(1), (1, 4, 8, 8, 3)), jnp.array([0.5])
  plain = model(x, t, text)
  np.testing.assert_array_equal(model(x, t, text, estimate=jnp.zeros_like(x)), plain)
  assert float(jnp.max(jnp.abs(model(x, t, text, estimate=x) - plain))) > 1e-3
  without = VideoDiT(small_model_cfg(), text_len=16, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="without model.self_condition"):
    without(x, t, text, estimate=x)


def test_long_skips_start_as_the_plain_model_and_then_read_the_shallow_blocks():
  """model.long_skips: with its joins at their [I; 0] init the model computes what the same
  weights without skips compute; joins that read the skip change the prediction."""
  cfg = small_model_cfg()
  cfg.depth = 4
  plain = VideoDiT(cfg, text_len=16, rngs=nnx.Rngs(0))
  cfg.long_skips = True
  skipped = randomized(VideoDiT(cfg, text_len=16, rngs=nnx.Rngs(0)))
  assert sorted(skipped.skip_joins.keys()) == ["2", "3"]  # block 3 reads 0, block 2 reads 1
  hash(nnx.graphdef(skipped))  # a static jit argument in sampling
  fresh = VideoDiT(cfg, text_len=16, rngs=nnx.Rngs(1))
  nnx.update(skipped.skip_joins, nnx.state(fresh.skip_joins))  # joins back at their init
  shared = {k: v for k, v in nnx.state(skipped, nnx.Param).items() if k != "skip_joins"}
  nnx.update(plain, nnx.State(shared))
  text = jnp.asarray(tokenizer.encode_batch(["a red circle", "a blue square"], 16))
  x, t = jax.random.normal(jax.random.key(1), (2, 4, 8, 8, 3)), jnp.array([0.2, 0.7])
  np.testing.assert_allclose(skipped(x, t, text), plain(x, t, text), rtol=1e-5, atol=1e-6)
  kernel = skipped.skip_joins["3"].proj.kernel
  kernel.value = kernel.value + 0.1 * jax.random.normal(jax.random.key(3), kernel.value.shape)
  assert float(jnp.max(jnp.abs(skipped(x, t, text) - plain(x, t, text)))) > 1e-3


def test_long_skips_need_a_token_route_symmetric_about_the_middle():
  cfg = small_model_cfg()
  cfg.depth, cfg.long_skips, cfg.route_keep = 4, True, 0.5
  cfg.route_blocks = (1, 3)  # blocks 1 and 2, a mirrored pair: both see the routed tokens
  model = VideoDiT(cfg, text_len=16, rngs=nnx.Rngs(0))
  text = jnp.asarray(tokenizer.encode_batch(["a red circle"], 16))
  out = model(jnp.ones((1, 4, 8, 8, 3)), jnp.array([0.5]), text, route_key=jax.random.key(0))
  assert out.shape == (1, 4, 8, 8, 3)
  cfg.route_blocks = (1, 2)
  with pytest.raises(ValueError, match=r"joins block 1 to block 2.*e\.g\. \(1, 3\)"):
    VideoDiT(cfg, text_len=16, rngs=nnx.Rngs(0))
