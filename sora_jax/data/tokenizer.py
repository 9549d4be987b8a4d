"""Byte-level text tokenizer: no vocabulary file, any UTF-8 text encodes.

Token ids: 0 pads, 1 begins every sequence, byte b becomes b + 2. The BOS token
is always present, so the empty caption (the classifier-free-guidance "null"
text) is [BOS, PAD, PAD, ...] and still gives the text encoder one real token.
"""

from collections.abc import Sequence

import numpy as np

PAD_ID = 0
BOS_ID = 1
BYTE_OFFSET = 2
VOCAB_SIZE = 256 + BYTE_OFFSET  # 258


def _utf8(text: str) -> bytes:
  """UTF-8 bytes of `text`, with a clear error for lone surrogates."""
  try:
    return text.encode("utf-8")
  except UnicodeEncodeError as e:
    raise ValueError(
        f"text is not valid UTF-8 (character {text[e.start:e.end]!r} at"
        f" position {e.start} cannot be encoded); pass real Unicode text"
    ) from None


def encode(text: str, length: int) -> np.ndarray:
  """Returns int32 [length]: BOS, the bytes of `text` (+2), zero padded.

  Text longer than `length - 1` bytes is truncated (possibly inside a
  multi-byte character; `decode` replaces such a broken tail).
  """
  if not isinstance(text, str):
    raise ValueError(f"text must be a str, got {type(text).__name__}")
  if not isinstance(length, (int, np.integer)) or length < 1:
    raise ValueError(f"length must be an int >= 1 (room for BOS), got {length!r}")
  data = _utf8(text)[: length - 1]
  tokens = np.zeros((length,), np.int32)
  tokens[0] = BOS_ID
  tokens[1 : 1 + len(data)] = np.frombuffer(data, np.uint8).astype(np.int32) + BYTE_OFFSET
  return tokens


def encode_batch(texts: Sequence[str], length: int) -> np.ndarray:
  """Returns int32 [N, length], one `encode` row per text."""
  if isinstance(texts, (str, bytes)):
    raise ValueError("encode_batch takes a sequence of str, got a single string")
  rows = [encode(t, length) for t in texts]
  if not rows:
    return np.zeros((0, length), np.int32)
  return np.stack(rows)


def decode(tokens) -> str:
  """Inverts `encode`: skips BOS, stops at the first PAD after the text."""
  tokens = np.asarray(tokens)
  if tokens.ndim != 1:
    raise ValueError(f"decode takes one sequence [L], got shape {tokens.shape}")
  if tokens.size and (tokens.min() < 0 or tokens.max() >= VOCAB_SIZE):
    raise ValueError(
        f"token ids must lie in [0, {VOCAB_SIZE}), got min {tokens.min()} max"
        f" {tokens.max()}"
    )
  data = bytearray()
  for t in tokens.tolist():
    if t == BOS_ID:
      continue
    if t == PAD_ID:
      break
    data.append(t - BYTE_OFFSET)
  return data.decode("utf-8", errors="replace")


def check_prompt(text) -> str:
  """Returns the stripped prompt, or raises ValueError saying what is wrong.

  Accepts str, or bytes that decode as UTF-8 (e.g. raw argv). Rejects other
  types, empty or whitespace-only prompts, and str with lone surrogates (what
  `surrogateescape` makes of undecodable argv bytes).
  """
  if isinstance(text, (bytes, bytearray)):
    try:
      text = bytes(text).decode("utf-8")
    except UnicodeDecodeError as e:
      raise ValueError(
          f"prompt bytes are not valid UTF-8 (byte {bytes(text)[e.start:e.end]!r}"
          f" at position {e.start}); pass UTF-8 text"
      ) from None
  if not isinstance(text, str):
    raise ValueError(f"prompt must be a str, got {type(text).__name__}")
  _utf8(text)
  stripped = text.strip()
  if not stripped:
    raise ValueError(
        f"prompt is empty or only whitespace ({text!r}); describe the video,"
        ' e.g. "a small red circle moves left"'
    )
  return stripped
