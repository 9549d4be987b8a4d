"""The byte-level text encoder's hashed word ids (model.text_word_buckets)."""

import jax
import numpy as np
import pytest
from flax import nnx

from sora_jax.data import tokenizer
from sora_jax.models import text


def buckets_of(texts, buckets=4096, length=48):
  return np.asarray(text.word_buckets(tokenizer.encode_batch(texts, length), buckets))


def word_ids(row, tokens):
  """{word: ids over its bytes} from a row of ids and the tokens it came from."""
  words = tokenizer.decode(tokens)
  out, start = {}, 1  # skip BOS
  for word in words.split(" "):
    out.setdefault(word.strip(",.!").lower(), []).append(row[start:start + len(word)])
    start += len(word.encode()) + 1
  return out


def test_every_byte_of_a_word_gets_that_words_id_and_only_words_get_ids():
  ids = buckets_of(["a red circle moves left."])[0]
  tokens = tokenizer.encode("a red circle moves left.", 48)
  for word, pieces in word_ids(ids, tokens).items():
    body = pieces[0][:len(word)]
    assert (body == body[0]).all() and body[0] > 0, word
  assert ids[0] == 0  # BOS
  assert (ids[tokens == tokenizer.PAD_ID] == 0).all()
  spaces = tokens == ord(" ") + tokenizer.BYTE_OFFSET
  assert (ids[spaces] == 0).all() and ids[len("a red circle moves left.")] == 0  # the full stop


def first_byte(text_, word):
  """Token index of the first byte of `word` in `text_` (BOS is token 0)."""
  return 1 + text_.index(word)


def test_same_word_same_id_anywhere_any_case_different_words_differ():
  one, two = "moves left", "Left then LEFT, right"
  a, b = buckets_of([one, two])
  left = a[first_byte(one, "left")]
  assert left == b[first_byte(two, "Left")] == b[first_byte(two, "LEFT")]
  assert b[first_byte(two, "right")] not in (0, left)
  assert a[first_byte(one, "moves")] != left
  directions = buckets_of(["left", "right", "up", "down"])[:, 1]
  assert len(set(directions.tolist())) == 4


def test_a_word_cut_by_the_text_length_is_still_one_word():
  ids = buckets_of(["moves leftward"], length=1 + len("moves lef"))[0]
  assert (ids[-3:] == ids[-1]).all() and ids[-1] > 0


def test_the_encoder_reads_words_only_when_asked():
  from configs import default  # noqa: PLC0415
  cfg = default.get_config().model
  cfg.text_width, cfg.text_depth = 32, 1
  plain = text.TextEncoder(cfg, 16, 32, nnx.Rngs(0), dtype=np.float32, param_dtype=np.float32)
  cfg.text_word_buckets = 64
  hashed = text.TextEncoder(cfg, 16, 32, nnx.Rngs(0), dtype=np.float32, param_dtype=np.float32)
  assert plain.word_embed is None and hashed.word_embed.embedding.shape == (65, 32)
  tokens = tokenizer.encode_batch(["red left", "red right"], 16)
  feats, _, pooled = jax.jit(lambda m, t: m(t))(hashed, tokens)
  assert feats.shape == (2, 16, 32) and np.isfinite(np.asarray(pooled)).all()


@pytest.mark.parametrize("buckets", [1, 7])
def test_ids_lie_in_range(buckets):
  ids = buckets_of(["the quick brown fox jumps over the lazy dog"], buckets)
  assert ids.min() >= 0 and ids.max() <= buckets


def test_with_no_layers_a_words_features_ignore_the_other_words():
  """text_depth 0 (experiments/STUDIES.md, "A text encoder of no layers"): each token is its
  byte, word and position alone, so "square" reads the same after "blue" as after "pink"; one
  layer mixes them."""
  from configs import default  # noqa: PLC0415
  cfg = default.get_config().model
  cfg.text_width, cfg.text_heads, cfg.text_word_buckets = 32, 2, 64
  captions = ["a blue square", "a pink square"]  # same length: "square" at the same positions
  start, colour = first_byte(captions[0], "square"), first_byte(captions[0], "blue")
  at = slice(start, start + len("square"))
  for depth, same in ((0, True), (1, False)):
    cfg.text_depth = depth
    enc = text.TextEncoder(cfg, 16, 24, nnx.Rngs(0), dtype=np.float32, param_dtype=np.float32)
    feats, _, _ = enc(tokenizer.encode_batch(captions, 16))
    feats = np.asarray(feats)
    assert feats.shape == (2, 16, 24)
    assert np.allclose(feats[0, at], feats[1, at], atol=1e-6) == same, depth
    assert not np.allclose(feats[0, colour], feats[1, colour])  # "blue" vs "pink"
