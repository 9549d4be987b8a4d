"""Where along the chain does a trained DiT decide each attribute? An SDEdit probe.

Held-out test clips (ground truth known) are noised to the level where the last `strength` of the
DDIM chain begins and denoised from there (`sora-jax sample --edit`), with their own plain caption
("keep": does the model hold what it is given?) or with one attribute of the caption changed
("shape", "direction", "colour": can the caption still move it at that noise level?). The judge
reads the result against the caption it was denoised toward. Strength 1 is plain text-to-video;
where "keep" falls as strength rises is where the sampler, not the denoiser, loses the attribute.

  python experiments/edit_probe.py --workdir=runs/shapes_quality --clips 32 \
      --strengths 0.2,0.4,0.6,0.8,1.0 --change keep,shape,direction
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sora_jax.data import captions, pipeline as data_pipeline, world  # noqa: E402
from sora_jax.eval import judge  # noqa: E402
from sora_jax.eval.run import FIELDS  # noqa: E402
from sora_jax.sample import pipeline  # noqa: E402

CHOICES = {"shape": tuple(world.SHAPES), "direction": tuple(world.DIRECTIONS),
           "colour": tuple(world.PALETTE)}


def changed(obj: dict, change: str) -> dict:
  """The object with attribute `change` moved to the next value of its list ("keep": as is)."""
  if change == "keep":
    return obj
  values = CHOICES[change]
  return dict(obj, **{change: values[(values.index(obj[change]) + 1) % len(values)]})


def probe(gen, clips: int, strengths, changes, guidance=None, seed: int = 0) -> list[dict]:
  examples = [e for e in data_pipeline.eval_examples(gen.config.data, "test")
              if len(e["objects"]) == 1][:clips]
  videos = np.stack([e["video"] for e in examples])
  rows = []
  for change in changes:
    rng = np.random.default_rng(seed)
    prompts = [captions.caption([changed(e["objects"][0], change)], "plain", rng)
               for e in examples]
    for strength in strengths:
      out = pipeline.generate(gen, prompts, seed=seed, guidance=guidance, first_frame_pass=False,
                              edit=videos, strength=strength)
      results = [judge.judge_video(v, captions.parse_prompt(p)) for v, p in zip(out, prompts)]
      summary = judge.summarize(results)
      rows.append({"change": change, "strength": strength,
                   **{f: summary[f] for f in FIELDS},
                   "static": float(np.mean([r[0]["pred_direction"] == "static"
                                            for r in results]))})
      print(json.dumps(rows[-1]), flush=True)
  return rows


def markdown(rows) -> str:
  head = "| caption | strength | " + " | ".join(FIELDS) + " | static |"
  lines = [head, "|---" * (len(FIELDS) + 3) + "|"]
  for r in rows:
    cells = [f"{r[f]:.2f}" if r[f] is not None else "-" for f in FIELDS + ("static",)]
    lines.append(f"| {r['change']} | {r['strength']:g} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--clips", type=int, default=32)
  p.add_argument("--strengths", default="0.2,0.4,0.6,0.8,1.0")
  p.add_argument("--change", default="keep,shape,direction",
                 help="comma-separated: keep, " + ", ".join(CHOICES))
  p.add_argument("--guidance", type=float, help="default: the run's config")
  p.add_argument("--step", type=int, help="checkpoint to probe (default: the latest)")
  p.add_argument("--out", help="folder for edit_probe.json / .md (default WORKDIR/edit_probe)")
  args = p.parse_args()
  changes = args.change.split(",")
  for c in changes:
    if c != "keep" and c not in CHOICES:
      p.error(f"--change {c!r}: allowed keep, {', '.join(CHOICES)}")
  gen = pipeline.load(args.workdir, step=args.step)
  rows = probe(gen, args.clips, [float(s) for s in args.strengths.split(",")], changes,
               guidance=args.guidance)
  out = args.out or os.path.join(args.workdir, "edit_probe")
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "edit_probe.json"), "w") as f:
    json.dump({"workdir": args.workdir, "step": gen.step, "clips": args.clips,
               "guidance": args.guidance, "rows": rows}, f, indent=1)
  table = markdown(rows)
  with open(os.path.join(out, "edit_probe.md"), "w") as f:
    f.write(table + "\n")
  print(table)


if __name__ == "__main__":
  main()
