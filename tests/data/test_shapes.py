"""Tests of the shapes world: rendering, motion, held-out pairs, and the TFDS builder."""

import os

import numpy as np
import pytest

from configs import default
from sora_jax.data import captions
from sora_jax.data import shapes
from sora_jax.data import world
from tests.conftest import tiny_data_config


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  """The tiny config built twice, into two directories: [(config, builder)] * 2."""
  configs = [tiny_data_config(tmp_path_factory.mktemp(f"tfds{i}")) for i in range(2)]
  return [(c, shapes.build(c)) for c in configs]


def record_files(builder):
  path = str(builder.data_path)
  return {f: open(os.path.join(path, f), "rb").read()
          for f in sorted(os.listdir(path)) if ".array_record" in f}


def test_config_name_and_validation():
  assert shapes.builder_from_config(tiny_data_config("/tmp/x")).builder_config.name == (
      "f8_h16_w16_o2_n24_t8")
  for key, bad in (("height", 20), ("width", 8), ("height", 264), ("frames", 0),
                   ("frames", 257), ("max_objects", 0), ("max_objects", 9), ("num_train", 0)):
    cfg = tiny_data_config("/tmp/x")
    cfg[key] = bad
    with pytest.raises(ValueError, match=f"{key}.*{bad}"):
      shapes.builder_from_config(cfg)
  # The default config is listed in the builder (TFDS requires the same object).
  builder = shapes.builder_from_config(default.get_config().data)
  assert builder.builder_config is shapes.Shapes.BUILDER_CONFIGS[0]
  cfg = tiny_data_config("/tmp/x")
  cfg.name = "mnist"
  with pytest.raises(ValueError, match="'mnist'"):
    shapes.builder_from_config(cfg)


def test_build_is_deterministic_and_idempotent(built):
  (config, builder), (_, other) = built
  first, second = record_files(builder), record_files(other)
  assert set(first) == {"shapes-train.array_record-00000-of-00001",
                        "shapes-test.array_record-00000-of-00001"}
  assert first == second
  path = os.path.join(str(builder.data_path), "shapes-train.array_record-00000-of-00001")
  mtime = os.path.getmtime(path)
  assert shapes.build(config).is_prepared()
  assert os.path.getmtime(path) == mtime


def test_examples_match_ground_truth(built):
  builder = built[0][1]
  c = builder.builder_config
  for split, count in (("train", 24), ("test", 8)):
    source = builder.as_data_source(split=split)
    assert len(source) == count
    for i in range(count):
      ex = source[i]
      assert ex["index"] == i  # records are in index order
      assert ex["video"].dtype == np.uint8 and ex["video"].shape == (8, 16, 16, 3)
      objects = shapes.unpack_objects(ex)
      assert 1 <= len(objects) <= 2 == ex["colour"].shape[0]
      assert len({o["colour"] for o in objects}) == len(objects)
      np.testing.assert_array_equal(
          shapes.render_clip(objects, c.frames, c.height, c.width), ex["video"])
      for register in captions.REGISTERS:
        parsed = captions.parse_prompt(ex[f"caption_{register}"].decode())
        assert [(p["colour"], p["shape"], p["direction"]) for p in parsed] == [
            (o["colour"], o["shape"], o["direction"]) for o in objects]


def test_held_out_pairs_only_in_test(built):
  for split in ("train", "test"):
    source = built[0][1].as_data_source(split=split)
    for i in range(len(source)):
      ex = source[i]
      pairs = {(o["colour"], o["shape"]) for o in shapes.unpack_objects(ex)}
      texts = " ".join(ex[f"caption_{r}"].decode() for r in captions.REGISTERS)
      pairs |= {(p["colour"], p["shape"]) for p in captions.parse_prompt(texts)}
      held = {p in world.HELD_OUT_PAIRS for p in pairs}
      assert held == ({False} if split == "train" else {True}), (split, i, pairs)


def test_sampling_many_clips():
  rng = np.random.default_rng(0)
  for held_out in (False, True):
    for _ in range(300):
      objects = shapes.sample_objects(rng, height=32, width=48, max_objects=4,
                                      held_out=held_out)
      assert len({o["colour"] for o in objects}) == len(objects)
      for o in objects:
        assert ((o["colour"], o["shape"]) in world.HELD_OUT_PAIRS) == held_out
        nominal = world.SIZES[o["size"]] * 32
        assert abs(o["extent"] - nominal) <= world.SIZE_JITTER * nominal + 1e-9
        assert np.hypot(*o["velocity"]) == pytest.approx(world.SPEEDS[o["speed"]] * 32)
        # At least one extent of room before the edge it moves toward.
        dy, dx = world.DIRECTIONS[o["direction"]]
        axis, d = (0, dy) if dy else (1, dx)
        length = (32, 48)[axis]
        lead = o["start"][axis] + d * o["extent"] / 2
        room = lead if d < 0 else length - lead
        assert room >= o["extent"] - 1e-9


def solo(shape, extent, centre=(64.0, 64.0), velocity=(0.0, 0.0), colour="red"):
  return dict(colour=colour, shape=shape, extent=extent, start=centre, velocity=velocity)


@pytest.mark.parametrize("shape, ratio", [("circle", np.pi / 4), ("square", 1.0),
                                          ("triangle", 0.5)])
def test_fill_ratio_and_flat_colour(shape, ratio):
  video = shapes.render_clip([solo(shape, 64.0)], 1, 128, 128)
  lit = video[0].any(-1)
  assert lit.sum() / 64**2 == pytest.approx(ratio, rel=0.03)
  colours = {tuple(p) for p in video[0].reshape(-1, 3)}
  assert colours == {world.PALETTE["red"], world.BACKGROUND}


def test_triangle_points_up_and_later_objects_on_top():
  lit = shapes.render_clip([solo("triangle", 64.0)], 1, 128, 128)[0].any(-1)
  widths = lit.sum(1)[lit.any(1)]
  assert widths[0] < widths[len(widths) // 2] < widths[-1]
  both = [solo("square", 32.0), solo("circle", 16.0, colour="blue")]
  video = shapes.render_clip(both, 1, 128, 128)
  assert tuple(video[0, 64, 64]) == world.PALETTE["blue"]
  assert tuple(video[0, 64, 50]) == world.PALETTE["red"]


@pytest.mark.parametrize("direction", list(world.DIRECTIONS))
def test_motion_direction(direction):
  dy, dx = world.DIRECTIONS[direction]
  obj = solo("square", 8.0, centre=(32.0, 32.0), velocity=(2.0 * dy, 2.0 * dx))
  video = shapes.render_clip([obj], 5, 64, 64)
  ys, xs = np.mgrid[:64, :64]
  lit = video.any(-1)
  cy = (lit * ys).sum((1, 2)) / lit.sum((1, 2))
  cx = (lit * xs).sum((1, 2)) / lit.sum((1, 2))
  np.testing.assert_allclose(np.diff(cy), 2.0 * dy, atol=1e-6)
  np.testing.assert_allclose(np.diff(cx), 2.0 * dx, atol=1e-6)
  _, bounces = shapes.trajectory(obj, 5, 64, 64)
  assert bounces == ()


def test_bounce_stays_in_canvas():
  obj = solo("square", 10.0, centre=(20.0, 30.0), velocity=(0.0, -3.0))
  centres, bounces = shapes.trajectory(obj, 100, 40, 48)
  assert bounces[:3] == ("left", "right", "left")
  assert np.all(centres[:, 1] >= 5 - 1e-4) and np.all(centres[:, 1] <= 43 + 1e-4)
  np.testing.assert_allclose(np.abs(np.diff(centres[:, 1]))[:7], 3.0, atol=1e-4)
  assert centres[9, 1] > centres[8, 1]  # reflected at x = 5 between frames 8 and 9
  video = shapes.render_clip([obj], 100, 40, 48)
  assert np.all(video.any(-1).sum((1, 2)) == 100)  # the whole 10x10 box in every frame
  _, short = shapes.trajectory(obj, 8, 40, 48)
  assert short == ()  # x goes 30 -> 9: no edge reached within 8 frames


def test_make_clip_captions_bounces():
  rng = np.random.default_rng(0)
  seen = set()
  for _ in range(100):
    _, objects, texts = shapes.make_clip(rng, frames=16, height=32, width=32)
    bounced = bool(objects[0]["bounces"])
    assert ("bounc" in texts["detailed"]) == bounced
    seen.add(bounced)
  assert seen == {True, False}


def test_render_clip_validates_canvas():
  with pytest.raises(ValueError, match="multiple of 8"):
    shapes.render_clip([], 4, 30, 32)
  with pytest.raises(ValueError, match="shape must be one of"):
    shapes.render_clip([solo("hexagon", 8.0)], 1, 16, 16)
