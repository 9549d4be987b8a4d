"""Tests of the byte-level tokenizer: round trip, BOS, truncation, bad prompts."""

import numpy as np
import pytest

from sora_jax.data import tokenizer


@pytest.mark.parametrize("text", ["a small red circle moves left", "", "héllo wörld ✓ 🟥"])
def test_round_trip(text):
  tokens = tokenizer.encode(text, 64)
  assert tokens.dtype == np.int32 and tokens.shape == (64,)
  assert tokenizer.decode(tokens) == text


def test_bos_always_present_and_empty_caption_is_null_text():
  assert tokenizer.encode("", 5).tolist() == [tokenizer.BOS_ID, 0, 0, 0, 0]
  assert tokenizer.encode("ab", 4).tolist() == [1, ord("a") + 2, ord("b") + 2, 0]
  assert tokenizer.encode("anything", 1).tolist() == [tokenizer.BOS_ID]


def test_vocabulary_covers_every_byte():
  assert tokenizer.VOCAB_SIZE == 258
  tokens = tokenizer.encode("\x00ÿ", 8)  # bytes 0x00, 0xc3 0xbf
  assert tokens[1] == 2 and tokens.max() < tokenizer.VOCAB_SIZE


def test_truncation_keeps_length_and_bos():
  tokens = tokenizer.encode("hello world", 6)
  assert tokens.shape == (6,)
  assert tokenizer.decode(tokens) == "hello"
  # A cut inside a multi-byte character decodes to a replacement character.
  assert tokenizer.decode(tokenizer.encode("é", 2)) == "\ufffd"


def test_encode_batch():
  batch = tokenizer.encode_batch(["red", "", "blue square"], 8)
  assert batch.shape == (3, 8) and batch.dtype == np.int32
  assert [tokenizer.decode(row) for row in batch] == ["red", "", "blue sq"]
  assert tokenizer.encode_batch([], 8).shape == (0, 8)
  with pytest.raises(ValueError, match="sequence of str"):
    tokenizer.encode_batch("red", 8)


def test_decode_stops_at_pad_and_rejects_bad_ids():
  assert tokenizer.decode([1, ord("a") + 2, 0, ord("b") + 2]) == "a"
  with pytest.raises(ValueError, match="token ids"):
    tokenizer.decode([1, 300])
  with pytest.raises(ValueError, match="shape"):
    tokenizer.decode(np.zeros((2, 3), np.int32))


def test_encode_rejects_bad_input():
  with pytest.raises(ValueError, match="length"):
    tokenizer.encode("a", 0)
  with pytest.raises(ValueError, match="str"):
    tokenizer.encode(b"a", 4)
  with pytest.raises(ValueError, match="UTF-8"):
    tokenizer.encode("bad \udcff", 8)


def test_check_prompt_accepts_and_strips():
  assert tokenizer.check_prompt("  a red circle\n") == "a red circle"
  assert tokenizer.check_prompt("a red circle".encode()) == "a red circle"


@pytest.mark.parametrize(
    "prompt, message",
    [
        (None, "must be a str"),
        (3, "must be a str"),
        ("", "empty"),
        ("  \t\n", "empty"),
        ("red \udcff circle", "not valid UTF-8"),  # surrogateescape'd argv byte
        (b"red \xff circle", "not valid UTF-8"),
    ],
)
def test_check_prompt_rejects(prompt, message):
  with pytest.raises(ValueError, match=message):
    tokenizer.check_prompt(prompt)
