"""Tests of captions: every template parses back to its attributes; prompt expansion."""

import itertools

import numpy as np
import pytest

from sora_jax.data import captions
from sora_jax.data import world

ATTRS = ("colour", "shape", "size", "direction", "speed")


def all_objects():
  for values in itertools.product(world.PALETTE, world.SHAPES, world.SIZES,
                                  world.DIRECTIONS, world.SPEEDS):
    yield dict(zip(ATTRS, values))


def stated(template):
  """Attributes a template states: colour, shape, direction always."""
  keys = {"colour", "shape", "direction"}
  if "{size}" in template:
    keys.add("size")
  if any(f in template for f in ("{speed}", "{adv}", "{verb}")):
    keys.add("speed")
  return keys


@pytest.mark.parametrize("register", ["short", "plain", "detailed"])
def test_every_template_round_trips(register):
  rng = np.random.default_rng(0)
  for index, template in enumerate(captions.TEMPLATES[register]):
    keys = stated(template)
    for obj in all_objects():
      obj = dict(obj, start_region=str(rng.choice(["upper left", "top", "centre", "right"])),
                 bounces=("left", "right")[: rng.integers(3)])
      text = captions.fill(template, obj, rng)
      (parsed,) = captions.parse_prompt(text)
      want = {k: obj[k] if k in keys else None for k in ATTRS}
      assert parsed == want, (register, index, text)


@pytest.mark.parametrize("register", captions.REGISTERS)
def test_multi_object_captions_round_trip(register):
  rng = np.random.default_rng(1)
  objects = list(all_objects())
  for _ in range(300):
    count = rng.integers(1, 4)
    clip = [objects[i] for i in rng.choice(len(objects), count, replace=False)]
    text = captions.caption(clip, register, rng)
    parsed = captions.parse_prompt(text)
    assert len(parsed) == count, text
    for got, want in zip(parsed, clip):
      for key in ("colour", "shape", "direction"):
        assert got[key] == want[key], text
      for key in ("size", "speed"):
        assert got[key] in (None, want[key]), text


def test_examples_from_the_design():
  obj = dict(colour="red", shape="circle", size="small", direction="left", speed="slow")
  assert captions.fill(captions.TEMPLATES["short"][0], obj) == "red circle moving left"
  assert captions.fill(captions.TEMPLATES["plain"][0], obj) == "a small red circle moves left"
  two = captions.caption(
      [obj, dict(colour="blue", shape="square", size="large", direction="up", speed="fast")],
      "plain", np.random.default_rng(0))
  assert " and a large blue square " in two
  text = "a small red circle moves left and a large blue square moves up"
  assert captions.parse_prompt(text) == [
      dict(colour="red", shape="circle", size="small", direction="left", speed=None),
      dict(colour="blue", shape="square", size="large", direction="up", speed=None)]


def test_wording_varies_with_rng():
  obj = dict(colour="red", shape="circle", size="small", direction="left", speed="slow")
  for register in captions.REGISTERS:
    texts = {captions.caption([obj], register, np.random.default_rng(s)) for s in range(40)}
    assert len(texts) >= 3, register


def test_detailed_mentions_bounce_only_when_it_happens():
  obj = dict(colour="green", shape="square", size="large", direction="left", speed="fast",
             start_region="upper right")
  rng = np.random.default_rng(0)
  for _ in range(10):
    calm = captions.caption([obj], "detailed", rng)
    assert "bounc" not in calm and "upper right" in calm and "black background" in calm
    bounced = captions.caption([dict(obj, bounces=("left",))], "detailed", rng)
    assert "bouncing off the left edge" in bounced
    assert calm.startswith(("A ", "Against")) and calm.endswith(".")


def test_start_region():
  assert captions.start_region(2, 30, 32, 32) == "upper right"
  assert captions.start_region(16, 16, 32, 32) == "centre"
  assert captions.start_region(30, 16, 32, 32) == "bottom"
  assert captions.start_region(16, 1, 32, 32) == "left"


def test_caption_rejects_bad_input():
  obj = dict(colour="red", shape="circle", size="small", direction="left", speed="slow")
  with pytest.raises(ValueError, match="register"):
    captions.caption([obj], "poetic", np.random.default_rng(0))
  with pytest.raises(ValueError, match="at least one object"):
    captions.caption([], "short", np.random.default_rng(0))
  with pytest.raises(ValueError, match="speed must be one of .* got None"):
    captions.caption([dict(obj, speed=None)], "short", np.random.default_rng(0))
  with pytest.raises(ValueError, match="colour must be one of .* got 'purple'"):
    captions.caption([dict(obj, colour="purple")], "short", np.random.default_rng(0))


def test_parse_unknown_words_and_synonyms():
  assert captions.parse_prompt("a cat sleeping") == []
  (obj,) = captions.parse_prompt("A big orange triangle drifting quickly downwards!")
  assert obj == dict(colour="orange", shape="triangle", size="large", direction="down",
                     speed="fast")


def test_expand_prompt():
  text = captions.expand_prompt("red circle moving left")
  assert text == captions.expand_prompt("red circle moving left")  # deterministic default
  assert text.endswith(".") and len(text) > len("red circle moving left")
  (obj,) = captions.parse_prompt(text)
  assert (obj["colour"], obj["shape"], obj["direction"]) == ("red", "circle", "left")
  assert obj["size"] in world.SIZES and obj["speed"] in world.SPEEDS
  # Stated attributes survive; unstated ones are filled in.
  (obj,) = captions.parse_prompt(captions.expand_prompt("a large blue square moves up slowly"))
  assert obj == dict(colour="blue", shape="square", size="large", direction="up", speed="slow")
  two = captions.parse_prompt(captions.expand_prompt(
      "red circle moving left and blue square going up", np.random.default_rng(3)))
  assert [(o["colour"], o["shape"], o["direction"]) for o in two] == [
      ("red", "circle", "left"), ("blue", "square", "up")]
  assert captions.expand_prompt("a cat sleeping") == "a cat sleeping"


@pytest.mark.parametrize("register", ["short", "plain", "detailed"])
def test_dropping_attributes_removes_exactly_those_words(register):
  rng = np.random.default_rng(0)
  for obj in itertools.islice(all_objects(), 0, None, 7):
    text = captions.caption([obj], register, rng)
    no_colour = captions.drop_attributes(text, ["colour"])
    (parsed,) = captions.parse_prompt(no_colour)
    assert parsed["colour"] is None and parsed["shape"] == obj["shape"]
    assert parsed["direction"] == obj["direction"]
    no_shape = captions.drop_attributes(text, ["shape"])
    assert captions.parse_prompt(no_shape) == []  # no shape word left to hang attributes on
    assert no_shape.replace("shape", obj["shape"]) == text
    assert obj["colour"] in no_shape
    neither = captions.drop_attributes(text, ["colour", "shape"])
    assert obj["colour"] not in neither and obj["shape"] not in neither
    assert captions.drop_attributes(text, []) == text


def test_dropping_attributes_examples_and_bad_kinds():
  assert (captions.drop_attributes("a small red circle moves left", ["colour"])
          == "a small circle moves left")
  assert (captions.drop_attributes("blue square going up and red circle moving left",
                                   ["colour", "shape"]) == "shape going up and shape moving left")
  with pytest.raises(ValueError, match="among .*'colour', 'shape'.*got \\['size'\\]"):
    captions.drop_attributes("a small red circle moves left", ["size"])


def test_other_shapes_swap_the_one_shape_word():
  assert captions.other_shapes("a small red circle moves left") == [
      "a small red square moves left", "a small red triangle moves left"]
  for prompt in ("a red thing moves up", "a red circle and a blue square"):
    with pytest.raises(ValueError, match="naming one shape"):
      captions.other_shapes(prompt)
