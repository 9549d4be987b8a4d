"""Prompt adherence of a trained workdir: sample held-out prompts, judge them, report."""

import json
import os

import numpy as np

from sora_jax.data import captions, shapes
from sora_jax.eval import judge
from sora_jax.sample import pipeline

FIELDS = ("presence", "colour", "shape", "size", "direction")


def heldout_prompts(data_cfg, num_prompts: int, seed: int = 0) -> list[str]:
  """Plain-register prompts of single objects whose colour-shape pair training never saw."""
  rng = np.random.default_rng(seed)
  prompts = []
  for _ in range(num_prompts):
    objects = shapes.sample_objects(rng, height=data_cfg.height, width=data_cfg.width,
                                    max_objects=1, held_out=True)
    prompts.append(captions.caption(objects, "plain", rng))
  return prompts


def evaluate(gen: pipeline.Generator, prompts, *, seeds: int = 1, **sample_kw) -> dict:
  """Samples every prompt with seeds 0..seeds-1 and judges each video against its prompt."""
  results = []
  for seed in range(seeds):
    videos = pipeline.generate(gen, prompts, seed=seed, **sample_kw)
    for prompt, video in zip(prompts, videos):
      results.append(judge.judge_video(video, captions.parse_prompt(prompt)))
  summary = judge.summarize(results)
  return {"step": gen.step, "prompts": len(prompts), "seeds": seeds, "summary": summary,
          "per_prompt": [{"prompt": p, "objects": r}
                         for p, r in zip(prompts * seeds, results)]}


def markdown(report: dict) -> str:
  """A one-row markdown table of the summary."""
  s = report["summary"]
  cells = [f"{s[f]:.2f}" if s.get(f) is not None else "-" for f in FIELDS]
  return "\n".join([
      "| step | prompts x seeds | " + " | ".join(FIELDS) + " |",
      "|---" * (len(FIELDS) + 2) + "|",
      f"| {report['step']} | {report['prompts']} x {report['seeds']} | " + " | ".join(cells) + " |"])


def write_report(report: dict, workdir) -> str:
  """Writes DIR/eval/report.json and report.md; returns the markdown."""
  out = os.path.join(workdir, "eval")
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "report.json"), "w", encoding="utf-8") as f:
    json.dump(report, f, indent=2, default=float)
  table = markdown(report)
  with open(os.path.join(out, "report.md"), "w", encoding="utf-8") as f:
    f.write(table + "\n")
  return table
