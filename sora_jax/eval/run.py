"""Prompt adherence of a trained workdir: sample prompts of held-out and seen colour-shape pairs,
judge them, report one row per group."""

import json
import os

import numpy as np

from sora_jax.data import captions, shapes, world
from sora_jax.eval import judge
from sora_jax.sample import pipeline

FIELDS = ("presence", "colour", "shape", "size", "direction")
GROUPS = ("held_out", "seen", "two_objects")
# what the judge can read an attribute as, for the confusion tables of report.md
JUDGED_VALUES = {"colour": tuple(world.PALETTE), "shape": world.SHAPES,
                 "size": tuple(world.SIZES), "direction": tuple(world.DIRECTIONS) + ("static",)}
CONFUSIONS = ("shape", "direction")  # the attributes report.md breaks down


def check_groups(groups) -> tuple:
  """`groups` as a tuple, or a ValueError naming the unknown one (before any model loads)."""
  for group in groups:
    if group not in GROUPS:
      raise ValueError(f"--groups: unknown group {group!r}; allowed: {', '.join(GROUPS)}")
  return tuple(groups)


def group_prompts(data_cfg, group: str, num_prompts: int, seed: int = 0) -> list[str]:
  """Plain-register prompts of one group: `held_out`, single objects whose colour-shape pair
  training never saw (issue 4's bar); `seen`, single objects of training pairs; `two_objects`,
  two objects of held-out pairs."""
  check_groups([group])
  rng = np.random.default_rng(seed)
  count = 2 if group == "two_objects" else 1
  prompts = []
  while len(prompts) < num_prompts:
    objects = shapes.sample_objects(rng, height=data_cfg.height, width=data_cfg.width,
                                    max_objects=count, held_out=group != "seen")
    if len(objects) == count:  # sample_objects draws 1..count objects
      prompts.append(captions.caption(objects, "plain", rng))
  return prompts


def heldout_prompts(data_cfg, num_prompts: int, seed: int = 0) -> list[str]:
  """The prompts of issue 4's bar: held-out single objects."""
  return group_prompts(data_cfg, "held_out", num_prompts, seed)


def evaluate(gen: pipeline.Generator, prompts, *, seeds: int = 1, **sample_kw) -> dict:
  """Samples every prompt with seeds 0..seeds-1 and judges each video against its prompt."""
  videos = (pipeline.generate(gen, prompts, seed=seed, **sample_kw) for seed in range(seeds))
  return {"step": gen.step, "prompts": len(prompts), "seeds": seeds,
          **judge_videos(prompts, videos)}


def judge_videos(prompts, videos_by_seed) -> dict:
  """{"summary", "per_prompt"} of a report: each seed's videos (one a prompt, in order, read
  one seed at a time) judged against their prompts, each prompt parsed once."""
  asked = [captions.parse_prompt(p) for p in prompts]
  per_prompt = []
  for videos in videos_by_seed:
    per_prompt += [{"prompt": p, "objects": judge.judge_video(v, objects)}
                   for p, objects, v in zip(prompts, asked, videos)]
  return {"summary": judge.summarize([entry["objects"] for entry in per_prompt]),
          "per_prompt": per_prompt}


def evaluate_groups(gen: pipeline.Generator, num_prompts: int, *, seeds: int = 1,
                    groups=GROUPS, **sample_kw) -> dict:
  """`evaluate` on each group's prompts; the top-level summary is the first group's."""
  reports = {g: evaluate(gen, group_prompts(gen.config.data, g, num_prompts), seeds=seeds,
                         **sample_kw) for g in groups}
  return {**reports[groups[0]], "groups": reports}


def _groups(report: dict):
  """(name, report) of each group of a grouped report; "-" for a report of one group."""
  return report.get("groups", {"-": report}).items()


def markdown(report: dict) -> str:
  """A markdown table of the summary: one row per group when the report has groups."""
  lines = ["| step | prompts | prompts x seeds | " + " | ".join(FIELDS) + " |",
           "|---" * (len(FIELDS) + 3) + "|"]
  for name, r in _groups(report):
    s = r["summary"]
    cells = [f"{s[f]:.2f}" if s.get(f) is not None else "-" for f in FIELDS]
    lines.append(f"| {report['step']} | {name} | {r['prompts']} x {r['seeds']} | "
                 + " | ".join(cells) + " |")
  return "\n".join(lines)


def _objects(report: dict):
  """(the prompt's attributes, the judge's verdict) for every object of one group's videos."""
  for entry in report["per_prompt"]:
    yield from zip(captions.parse_prompt(entry["prompt"]), entry["objects"])


def confusion(report: dict, key: str = "shape") -> dict:
  """{prompted value: {judged value: count}} over every object of one group's videos, what a
  failing attribute turns into ("none": not measurable, e.g. the object is missing)."""
  table = {}
  for asked, judged in _objects(report):
    if asked.get(key) is not None:
      row = table.setdefault(asked[key], {})
      got = judged[f"pred_{key}"] or "none"
      row[got] = row.get(got, 0) + 1
  return table


def by_pair(report: dict, key: str = "shape") -> dict:
  """{"colour shape": (objects judged right on `key`, objects)} over one group's videos. An
  attribute can fail on some colours and not others: in run r13 squares came out square on 13 of
  20 held-out (blue, orange) objects and 4 of 24 seen ones."""
  table = {}
  for asked, judged in _objects(report):
    pair = f"{asked['colour']} {asked['shape']}"
    right, total = table.get(pair, (0, 0))
    table[pair] = (right + bool(judged[key]), total + 1)
  return table


def by_pair_markdown(report: dict, key: str = "shape") -> str:
  """A markdown table of `by_pair` for each group: one row per prompted colour-shape pair."""
  lines = [f"| group | prompted pair | {key} right |", "|---|---|---|"]
  for name, r in _groups(report):
    pairs = by_pair(r, key)
    for pair in sorted(pairs, key=lambda p: p.split()[::-1]):  # by shape, then colour
      lines.append(f"| {name} | {pair} | {pairs[pair][0]} / {pairs[pair][1]} |")
  return "\n".join(lines)


def confusion_markdown(report: dict, key: str = "shape") -> str:
  """A markdown table of `confusion` for each group: one row per prompted value."""
  values = JUDGED_VALUES[key] + ("none",)
  lines = [f"| group | prompted {key} | " + " | ".join(f"judged {v}" for v in values) + " |",
           "|---" * (len(values) + 2) + "|"]
  for name, r in _groups(report):
    for asked, row in sorted(confusion(r, key).items()):
      lines.append(f"| {name} | {asked} | " + " | ".join(str(row.get(v, 0)) for v in values)
                   + " |")
  return "\n".join(lines)


def write_report(report: dict, workdir) -> str:
  """Writes DIR/eval/report.json and report.md; returns the markdown."""
  out = os.path.join(workdir, "eval")
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "report.json"), "w", encoding="utf-8") as f:
    json.dump(report, f, indent=2, default=float)
  table = markdown(report)
  with open(os.path.join(out, "report.md"), "w", encoding="utf-8") as f:
    f.write("\n\n".join([table] + [confusion_markdown(report, k) for k in CONFUSIONS]
                          + [by_pair_markdown(report)]) + "\n")
  return table
