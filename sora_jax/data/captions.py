"""Captions of shapes-world clips from ground truth, their parser and prompt expansion.

Three registers, as in the Sora report's recaptioning: `short` ("red circle moving
left"), `plain` ("a small red circle moves left") and `detailed` (a full sentence
with start place, speed and bounces). Training draws all three so the model follows
terse and rich prompts; `expand_prompt` turns a user's short prompt into the
detailed register at sampling time. `parse_prompt` inverts the templates, so the
judge and the sampler read prompts by the same rules that wrote them.
"""

import re

import numpy as np

from sora_jax.data import world

REGISTERS = ("short", "plain", "detailed")
KEYS = tuple(f"caption_{r}" for r in REGISTERS)  # the data set's feature of each register


def as_text(caption) -> str:
  """A caption as a data source gives it (bytes from TFDS or ArrayRecord, or str) -> str."""
  return caption.decode("utf-8") if isinstance(caption, bytes) else str(caption)


# One template per object; fields: size, colour, shape, dir, speed (adjective),
# adv (adverb). Multi-object captions join objects with " and " (short, plain) or
# as separate sentences (detailed).
TEMPLATES = {
    "short": (
        "{colour} {shape} moving {dir}",
        "{size} {colour} {shape} moving {dir}",
        "{colour} {shape} going {dir}",
        "{speed} {colour} {shape} moving {dir}",
        "{size} {colour} {shape} {dir}",
    ),
    "plain": (
        "a {size} {colour} {shape} moves {dir}",
        "a {size} {colour} {shape} moving {dir}",
        "a {size} {colour} {shape} moves {dir} {adv}",
        "a {size} {colour} {shape} {adv} moves {dir}",
        "a {size} {colour} {shape} slides {dir_phrase}",
        "a {size} {colour} {shape} travels {adv} {dir_phrase}",
    ),
    "detailed": (
        "A {size} {colour} {shape} starts near the {start} and {verb} {adv} {dir_phrase}"
        " across a black background{bounce}.",
        "Against a black background, a {size} {colour} {shape} {verb} {adv} {dir_phrase}"
        " from near the {start}{bounce}.",
        "A {size} {colour} {shape}, starting near the {start}, {verb} {adv} {dir_phrase}"
        " over a plain black background{bounce}.",
    ),
}

_SPEED_ADVERBS = {"slow": ("slowly",), "fast": ("quickly", "rapidly")}
_VERBS = {"slow": ("glides", "drifts", "moves"), "fast": ("races", "darts", "moves")}
_DIR_PHRASES = {"left": "to the left", "right": "to the right", "up": "upward",
                "down": "downward"}
_OPPOSITE = {"left": "right", "right": "left", "up": "bottom", "down": "top"}

# Words the parser knows, mapped to attribute values.
_WORDS = {
    "colour": {c: c for c in world.PALETTE},
    "shape": {s: s for s in world.SHAPES},
    "size": {"small": "small", "little": "small", "tiny": "small", "large": "large",
             "big": "large"},
    "speed": {"slow": "slow", "slowly": "slow", "fast": "fast", "quick": "fast",
              "quickly": "fast", "rapid": "fast", "rapidly": "fast"},
    "direction": {"left": "left", "leftward": "left", "leftwards": "left",
                  "right": "right", "rightward": "right", "rightwards": "right",
                  "up": "up", "upward": "up", "upwards": "up", "down": "down",
                  "downward": "down", "downwards": "down"},
}
_ADJECTIVES = ("colour", "size", "speed")
_ALLOWED = {"colour": world.PALETTE, "shape": world.SHAPES, "size": world.SIZES,
            "direction": world.DIRECTIONS, "speed": world.SPEEDS}
# Phrases naming places rather than motion ("near the upper right", "bouncing off
# the left edge", "a black background"): removed before reading directions.
_PLACE_PHRASES = re.compile(
    r"\bnear the (?:upper |lower )?(?:left|right|top|bottom|centre|center|middle)\b"
    r"|\bbounc[^.]*\bedges?\b"
    r"|\b(?:a|the) (?:plain )?\w+ background\b"
)


def start_region(y: float, x: float, height: int, width: int) -> str:
  """Names the third of the canvas a centre (y, x) lies in: "upper right", "centre"."""
  row = ("upper", "", "lower")[min(int(3 * y / height), 2)]
  col = ("left", "", "right")[min(int(3 * x / width), 2)]
  if row and col:
    return f"{row} {col}"
  if row:
    return {"upper": "top", "lower": "bottom"}[row]
  return col or "centre"


def bounce_phrase(bounces) -> str:
  """", bouncing off the left edge" for the edges hit in order; "" if none."""
  bounces = tuple(bounces)
  if not bounces:
    return ""
  if len(bounces) == 1:
    return f", bouncing off the {bounces[0]} edge"
  if len(bounces) == 2:
    return f", bouncing off the {bounces[0]} edge and then the {bounces[1]} edge"
  a, b = bounces[:2]
  return f", bouncing back and forth between the {a} and {b} edges"


def fill(template: str, obj: dict, rng: np.random.Generator | None = None) -> str:
  """Fills one object template from an object's attribute names."""
  rng = np.random.default_rng(0) if rng is None else rng
  for key, allowed in _ALLOWED.items():
    if obj.get(key) not in allowed:
      raise ValueError(
          f"object {key} must be one of {tuple(allowed)} to be captioned, got {obj.get(key)!r}")
  speed, direction = obj["speed"], obj["direction"]
  return template.format(
      colour=obj["colour"], shape=obj["shape"], size=obj["size"], dir=direction,
      speed=speed, dir_phrase=_DIR_PHRASES[direction],
      adv=str(rng.choice(_SPEED_ADVERBS[speed])), verb=str(rng.choice(_VERBS[speed])),
      start=obj.get("start_region") or _OPPOSITE[direction],
      bounce=bounce_phrase(obj.get("bounces", ())),
  )


def caption(objects, register: str, rng: np.random.Generator) -> str:
  """Captions a clip's objects in one register, templates drawn by `rng`.

  Each object is a dict of attribute names (colour, shape, size, direction,
  speed); the detailed register also reads `start_region` (see `start_region`)
  and `bounces` (edges hit during the clip, in order) when present.
  """
  if register not in TEMPLATES:
    raise ValueError(f"register must be one of {REGISTERS}, got {register!r}")
  if not objects:
    raise ValueError("a caption needs at least one object, got none")
  templates = TEMPLATES[register]
  parts = [fill(templates[rng.integers(len(templates))], o, rng) for o in objects]
  return (" " if register == "detailed" else " and ").join(parts)


def _words(text: str) -> list[str]:
  text = _PLACE_PHRASES.sub(" ", text.lower())
  return re.findall(r"[a-z]+", text)


def _kind(word: str) -> str | None:
  for kind, table in _WORDS.items():
    if word in table:
      return kind
  return None


def parse_prompt(text: str) -> list[dict]:
  """Reads objects back from a caption or prompt, one dict per shape named.

  Each dict has colour, shape, size, direction, speed; an attribute the text
  does not state is None. Adjectives in front of a shape word belong to it;
  words after it (adverbs, directions) belong to it until the next object.
  """
  if not isinstance(text, str):
    raise ValueError(f"prompt must be a str, got {type(text).__name__}")
  words = _words(text)
  kinds = [_kind(w) for w in words]
  starts = []  # first word index of each object's noun phrase
  for i, kind in enumerate(kinds):
    if kind == "shape":
      j = i
      while j > 0 and (kinds[j - 1] in _ADJECTIVES or words[j - 1] in ("a", "an", "the")):
        j -= 1
      starts.append((j, i))
  objects = []
  for k, (start, shape_at) in enumerate(starts):
    end = starts[k + 1][0] if k + 1 < len(starts) else len(words)
    obj = dict.fromkeys(("colour", "shape", "size", "direction", "speed"))
    for i in range(start, end):
      kind = kinds[i]
      if kind is None or (kind == "colour" and i > shape_at):
        continue
      if obj[kind] is None:
        obj[kind] = _WORDS[kind][words[i]]
    objects.append(obj)
  return objects


# What a dropped attribute leaves: no colour word; "shape" for the shape word.
_COLOUR_WORD = re.compile(r"\b(?:" + "|".join(world.PALETTE) + r")\s+")
_SHAPE_WORD = re.compile(r"\b(?:" + "|".join(world.SHAPES) + r")\b")
DROPPABLE = ("colour", "shape")


def drop_attributes(text: str, kinds) -> str:
  """The caption with every colour and / or shape word gone ("a small red circle moves left" ->
  "a small circle moves left", "a small red shape moves left"). Trained on such partial captions
  (data.attribute_dropout), the model learns each word's own effect, which the sampler can then
  strengthen against the rest of the prompt (sample.attribute_guidance)."""
  unknown = set(kinds) - set(DROPPABLE)
  if unknown:
    raise ValueError(f"attributes to drop must be among {DROPPABLE}, got {sorted(unknown)}")
  if "colour" in kinds:
    text = _COLOUR_WORD.sub("", text)
  if "shape" in kinds:
    text = _SHAPE_WORD.sub("shape", text)
  return text


def other_shapes(text: str) -> list[str]:
  """The prompt once with its shape word swapped for each other shape ("a red circle" -> ["a red
  square", "a red triangle"]): the texts a shape-margin verifier contrasts it with
  (diffusion/rerank.py). The prompt must name exactly one shape."""
  named = _SHAPE_WORD.findall(text)
  if len(named) != 1:
    raise ValueError(f"a shape margin needs a prompt naming one shape ({world.SHAPES}); "
                     f"{text!r} names {len(named)}")
  return [_SHAPE_WORD.sub(shape, text) for shape in world.SHAPES if shape != named[0]]


def expand_prompt(text: str, rng: np.random.Generator | None = None) -> str:
  """Rewrites a short or plain prompt in the detailed register.

  This is the hook where a language model could stand (the Sora report expands
  prompts with GPT): the sampler calls this module-level function, so swapping
  it is one line. Attributes the prompt leaves open are drawn from `rng`
  (default: a fixed seed, so the same prompt expands the same way). A prompt
  naming no shape is returned unchanged.
  """
  rng = np.random.default_rng(0) if rng is None else rng
  objects = parse_prompt(text)
  if not objects:
    return text
  choices = {"colour": tuple(world.PALETTE), "size": tuple(world.SIZES),
             "direction": tuple(world.DIRECTIONS), "speed": tuple(world.SPEEDS)}
  filled = []
  for obj in objects:
    obj = dict(obj)
    for key, values in choices.items():
      if obj[key] is None:
        obj[key] = str(rng.choice(values))
    filled.append(obj)
  return caption(filled, "detailed", rng)
