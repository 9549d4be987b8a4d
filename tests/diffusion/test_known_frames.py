import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from sora_jax.data import tokenizer
from sora_jax.diffusion import known_frames, sampling
from sora_jax.models.dit import VideoDiT
from tests.models.test_dit import small_model_cfg


def _pattern_of(row) -> str:
  """Which of known_frames.PATTERNS a 0/1 row of length T is, or "" for none/other."""
  t = len(row)
  known = np.flatnonzero(row)
  if len(known) == 0:
    return "none"
  k = len(known)
  if list(known) == [0]:
    return "first"  # also a prefix of 1
  if list(known) == list(range(k)):
    return "prefix"
  if list(known) == list(range(t - k, t)):
    return "suffix"
  head = [i for i in known if i < t // 2]
  tail = [i for i in known if i >= t // 2]
  if head == list(range(len(head))) and tail == list(range(t - len(tail), t)):
    return "ends"
  return "other"


def test_masks_follow_the_patterns_and_the_probability():
  masks = np.asarray(known_frames.random_mask(jax.random.key(0), 512, 16, 1.0))
  kinds = [_pattern_of(r) for r in masks]
  assert "none" not in kinds and "other" not in kinds
  assert {"first", "prefix", "suffix", "ends"} <= set(kinds)
  assert masks.sum(1).max() <= 8  # at most half the clip is given
  none = np.asarray(known_frames.random_mask(jax.random.key(1), 64, 16, 0.0))
  assert none.sum() == 0
  half = np.asarray(known_frames.random_mask(jax.random.key(2), 2000, 16, 0.5))
  assert 0.45 < (half.sum(1) > 0).mean() < 0.55
  with pytest.raises(ValueError, match="known_frames_prob"):
    known_frames.random_mask(jax.random.key(0), 2, 16, 1.5)


def test_pattern_weights_pick_the_patterns_in_proportion():
  only_first = np.asarray(known_frames.random_mask(jax.random.key(3), 256, 16, 1.0,
                                                   (1.0, 0.0, 0.0, 0.0)))
  assert {_pattern_of(r) for r in only_first} == {"first"}
  # first 3 : ends 1 -> "first" on about 3/4 of clips ("ends" never looks like "first")
  mixed = np.asarray(known_frames.random_mask(jax.random.key(4), 4000, 16, 1.0,
                                              (3.0, 0.0, 0.0, 1.0)))
  kinds = [_pattern_of(r) for r in mixed]
  assert set(kinds) == {"first", "ends"}
  assert 0.72 < kinds.count("first") / len(kinds) < 0.78
  for bad in [(1.0, 1.0, 1.0), (0.0, 0.0, 0.0, 0.0), (1.0, -1.0, 1.0, 1.0)]:
    with pytest.raises(ValueError, match="known_frames_weights"):
      known_frames.random_mask(jax.random.key(0), 2, 16, 1.0, bad)


def test_model_inputs_carry_known_frames_only_where_the_mask_says():
  x = jnp.full((2, 4, 8, 8, 3), 0.5)
  known = jax.random.normal(jax.random.key(0), x.shape)
  mask = jnp.array([[1, 0, 0, 0], [0, 0, 1, 1]], jnp.float32)
  inp = known_frames.model_inputs(x, known, mask)
  assert inp.shape == (2, 4, 8, 8, 7)
  np.testing.assert_array_equal(inp[..., :3], x)
  np.testing.assert_array_equal(inp[0, 0, ..., 3:6], known[0, 0])
  np.testing.assert_array_equal(inp[0, 1:, ..., 3:6], 0.0)
  np.testing.assert_array_equal(inp[..., 6], jnp.broadcast_to(mask[:, :, None, None], x.shape[:4]))
  np.testing.assert_array_equal(known_frames.model_inputs(x, None, None)[..., 3:], 0.0)
  with pytest.raises(ValueError, match="must match the clip"):
    known_frames.model_inputs(x, known[:, :2], mask)


def _model(patch=(2, 4, 4)):
  cfg = small_model_cfg()
  cfg.known_frames, cfg.patch = True, patch
  model = VideoDiT(cfg, text_len=16, rngs=nnx.Rngs(0))
  # give the zero-initialised output layers weights, so the output depends on the input
  for layer in (model.final, model.final_ada):
    layer.kernel[...] = 0.02 * jax.random.normal(jax.random.key(7), layer.kernel[...].shape)
  return model


def test_dit_reads_known_frames_and_ignores_unmasked_ones():
  model = _model()
  text = jnp.asarray(tokenizer.encode_batch(["a red circle moves left"], 16))
  x = jax.random.normal(jax.random.key(0), (1, 4, 8, 8, 3))
  t = jnp.array([0.7])
  known = jax.random.normal(jax.random.key(1), x.shape)
  other = known.at[:, 2:].set(-known[:, 2:])  # differs only where the mask is 0
  mask = jnp.array([[1.0, 1.0, 0.0, 0.0]])
  out = model(x, t, text, known, mask)
  np.testing.assert_allclose(model(x, t, text, other, mask), out, atol=1e-6)
  assert not np.allclose(model(x, t, text, -known, mask), out, atol=1e-4)
  assert not np.allclose(model(x, t, text), out, atol=1e-4)  # nothing known differs
  plain = VideoDiT(small_model_cfg(), text_len=16, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="without model.known_frames"):
    plain(x, t, text, known, mask)


def test_sampling_returns_the_known_frames_exactly():
  model = _model()
  cfg = sampling.SamplerConfig(prediction="x0", steps=3, guidance=2.0, time_group=2)
  text = jnp.asarray(tokenizer.encode_batch(["a red circle", "a blue square"], 16))
  uncond = jnp.zeros_like(text)
  known = jax.random.uniform(jax.random.key(1), (2, 4, 8, 8, 3), minval=-1, maxval=1)
  mask = jnp.array([[1, 0, 0, 0], [0, 0, 0, 1]], jnp.float32)
  out = jax.jit(lambda k: sampling.sample(model, cfg, k, known.shape, text, uncond, known, mask))(
      jax.random.key(0))
  np.testing.assert_array_equal(out[0, 0], known[0, 0])
  np.testing.assert_array_equal(out[1, 3], known[1, 3])
  assert not np.allclose(out[0, 1:], known[0, 1:])


def test_first_frame_pass_keeps_the_drafts_first_frame_and_redraws_the_rest():
  model = _model()
  cfg = sampling.SamplerConfig(prediction="x0", steps=3, time_group=2, first_frame_pass=True)
  text = jnp.asarray(tokenizer.encode_batch(["a red circle moves left"], 16))
  shape, key = (1, 4, 8, 8, 3), jax.random.key(5)
  out = sampling.sample_via_first_frame(model, cfg, key, shape, text, jnp.zeros_like(text))
  draft = sampling.sample(model, cfg, jax.random.split(key)[0], shape, text, jnp.zeros_like(text))
  np.testing.assert_allclose(out[:, 0], draft[:, 0], atol=1e-6)
  assert not np.allclose(out[:, 1:], draft[:, 1:], atol=1e-3)


def test_image_draft_draws_the_first_frame_alone_and_redraws_the_clip_knowing_it():
  model = _model(patch=(1, 4, 4))  # one frame a temporal patch: an image is a clip of one
  seen = []
  spy = lambda x, *a: seen.append(x.shape[1]) or model(x, *a)
  cfg = sampling.SamplerConfig(prediction="x0", steps=3, first_frame_pass=True, draft_image=True)
  text = jnp.asarray(tokenizer.encode_batch(["a red circle moves left"], 16))
  shape, key = (1, 4, 8, 8, 3), jax.random.key(5)
  out = sampling.sample_via_first_frame(spy, cfg, key, shape, text, jnp.zeros_like(text))
  assert sorted(set(seen)) == [1, 4]  # an image chain, then the clip's
  image = sampling.sample(model, cfg, jax.random.split(key)[0], (1, 1, 8, 8, 3), text,
                          jnp.zeros_like(text))
  np.testing.assert_allclose(out[:, :1], image, atol=1e-6)
  with pytest.raises(ValueError, match="draft_image needs first_frame_pass"):
    sampling.SamplerConfig(draft_image=True)
  with pytest.raises(ValueError, match="time_group = 1"):
    sampling.SamplerConfig(first_frame_pass=True, draft_image=True, time_group=2)


def test_ranked_drafts_give_the_first_frame_and_the_clip_is_drawn_after_the_pick():
  """sample.rerank_draft: best of 3 drafts, then the second pass. The clip's frame 0 is one of
  the three drafts' (the ones rerank.best_of draws from its key), and its other frames are drawn
  again; draft images are refused."""
  from sora_jax.sample import pipeline
  model = _model()
  graphdef, params = nnx.split(model)
  cfg = sampling.SamplerConfig(prediction="x0", steps=2, time_group=2, first_frame_pass=True,
                               candidates=3, rerank_levels=2, rerank_draft=True)
  text = jnp.asarray(tokenizer.encode_batch(["a red circle moves left", "a blue square"], 16))
  uncond, shape, key = jnp.zeros_like(text), (2, 4, 8, 8, 3), jax.random.key(5)
  out = pipeline.sample_videos(params, text, uncond, key, {}, graphdef=graphdef, cfg=cfg,
                               shape=shape)
  k_draw = jax.random.split(jax.random.split(key)[0])[0]
  tile = lambda v: jnp.concatenate([v] * 3)
  drafts = sampling.draft_first_frame(model, cfg, k_draw, (6,) + shape[1:], tile(text),
                                      tile(uncond)).reshape((3,) + shape)
  for b in range(2):
    gaps = [float(jnp.abs(out[b, 0] - drafts[n, b, 0]).max()) for n in range(3)]
    assert min(gaps) < 1e-5 and max(gaps) > 1e-3, gaps
    assert not np.allclose(out[b, 1:], drafts[int(np.argmin(gaps)), b, 1:], atol=1e-3)
  with pytest.raises(ValueError, match="rerank_draft ranks whole-clip drafts"):
    sampling.SamplerConfig(first_frame_pass=True, draft_image=True, rerank_draft=True)
