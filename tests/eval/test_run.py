"""`sora-jax eval`'s prompt groups: held-out pairs (the quality bar), seen pairs, two objects."""

import json

import pytest

from sora_jax import cli
from sora_jax.data import captions, world
from sora_jax.eval import run
from tests.conftest import tiny_data_config


def pairs_of(prompt):
  return [(o["colour"], o["shape"]) for o in captions.parse_prompt(prompt)]


def test_each_group_draws_its_own_pairs_and_object_count():
  data = tiny_data_config("unused")
  held, seen, two = (run.group_prompts(data, g, 40) for g in run.GROUPS)
  assert all(len(pairs_of(p)) == 1 and pairs_of(p)[0] in world.HELD_OUT_PAIRS for p in held)
  assert all(len(pairs_of(p)) == 1 and pairs_of(p)[0] not in world.HELD_OUT_PAIRS for p in seen)
  for prompt in two:
    pairs = pairs_of(prompt)
    assert len(pairs) == 2 and set(pairs) <= world.HELD_OUT_PAIRS
    assert pairs[0][0] != pairs[1][0], prompt  # two objects never share a colour
  assert len({pairs_of(p)[0] for p in held}) == len(world.HELD_OUT_PAIRS)  # all pairs drawn
  assert run.group_prompts(data, "seen", 40) == seen and run.heldout_prompts(data, 40) == held


def test_unknown_groups_are_rejected_before_a_model_loads(tmp_path, capsys):
  with pytest.raises(ValueError, match="unknown group 'held'; allowed: held_out, seen"):
    run.group_prompts(tiny_data_config("unused"), "held", 1)
  # No checkpoint in tmp_path either: the groups are checked first.
  assert cli.main(["eval", f"--workdir={tmp_path}", "--groups", "seen,nope"]) == 2
  err = capsys.readouterr().err
  assert "unknown group 'nope'" in err and err.count("\n") == 1


def test_eval_reports_one_row_per_group(config, tmp_path):
  from sora_jax.train import loop
  config.train.steps = 2
  loop.train(config, str(tmp_path), progress=False)
  assert cli.main(["eval", f"--workdir={tmp_path}", "--num_prompts", "2", "--steps", "2",
                   "--groups", "held_out,two_objects"]) == 0
  report = json.loads((tmp_path / "eval" / "report.json").read_text(encoding="utf-8"))
  assert list(report["groups"]) == ["held_out", "two_objects"]
  assert report["summary"] == report["groups"]["held_out"]["summary"]
  assert report["groups"]["held_out"]["summary"]["objects"] == 2
  assert report["groups"]["two_objects"]["summary"]["objects"] == 4  # two in each video
  table = (tmp_path / "eval" / "report.md").read_text(encoding="utf-8")
  assert table.count("\n| 2 | held_out | 2 x 1 |") == table.count("\n| 2 | two_objects |") == 1
  assert "| group | prompted shape | judged circle |" in table
  assert "| group | prompted direction | judged left |" in table
  assert "| group | prompted pair | shape right |" in table


def test_confusion_counts_what_each_prompted_value_was_judged_as():
  """Two videos of one prompt (two seeds) and a two-object prompt; a missing object is "none"."""
  judged = lambda shape, direction: {"pred_shape": shape, "pred_direction": direction}
  report = {"per_prompt": [
      {"prompt": "a red square moves left", "objects": [judged("circle", "left")]},
      {"prompt": "a red square moves left", "objects": [judged("square", "static")]},
      {"prompt": "a blue circle moves up and a green triangle moves down",
       "objects": [judged("circle", "up"), judged(None, None)]}]}
  assert run.confusion(report) == {"square": {"circle": 1, "square": 1}, "circle": {"circle": 1},
                                   "triangle": {"none": 1}}
  assert run.confusion(report, "direction") == {"left": {"left": 1, "static": 1}, "up": {"up": 1},
                                                "down": {"none": 1}}
  rows = run.confusion_markdown(report).splitlines()
  assert rows[0] == ("| group | prompted shape | judged circle | judged square | judged triangle "
                     "| judged none |")
  assert rows[2:] == ["| - | circle | 1 | 0 | 0 | 0 |", "| - | square | 1 | 1 | 0 | 0 |",
                      "| - | triangle | 0 | 0 | 0 | 1 |"]


def test_by_pair_counts_each_colour_shape_pair_right_out_of_asked():
  """Squares right on one colour and not another; a missing object counts as wrong."""
  judged = lambda ok: {"shape": ok}
  report = {"groups": {"held_out": {"per_prompt": [
      {"prompt": "a red square moves left", "objects": [judged(False)]},
      {"prompt": "a red square moves left", "objects": [judged(True)]},
      {"prompt": "a blue square moves up and a green triangle moves down",
       "objects": [judged(True), judged(None)]}]}}}
  group = report["groups"]["held_out"]
  assert run.by_pair(group) == {"red square": (1, 2), "blue square": (1, 1),
                                "green triangle": (0, 1)}
  assert run.by_pair_markdown(report).splitlines() == [
      "| group | prompted pair | shape right |", "|---|---|---|",
      "| held_out | blue square | 1 / 1 |", "| held_out | red square | 1 / 2 |",
      "| held_out | green triangle | 0 / 1 |"]
