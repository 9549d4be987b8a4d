"""Does a second pass over a model's own samples sharpen them? A restart probe.

Restart sampling (Xu et al. 2023) noises a finished sample back up part of the chain and
denoises it again, so errors the first pass carried along are partly washed out. Here each
held-out sample (issue 4's prompts, the eval's seeds) is edited toward its own prompt
(`sora-jax sample --edit`, SDEdit) at each `strength`, `rounds` times in a row, with fresh noise,
and judged after every round; the first row is the samples as drawn.

  python experiments/restart_probe.py --workdir=runs/r13s1 --strengths 0.3,0.5 --eps_scale 1.15 \
      --out experiments/results/NAME/restart_r13s1.json
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from experiments import results_io  # noqa: E402
from sora_jax.eval import run  # noqa: E402
from sora_jax.sample import pipeline  # noqa: E402


def judged(prompts, videos_by_seed) -> dict:
  """The judge's summary over every seed's videos, and the squares drawn square (run.confusion,
  as the eval's report counts them)."""
  report = run.judge_videos(prompts, videos_by_seed)
  summary = dict(report["summary"])
  summary["squares"] = run.confusion(report, "shape").get("square", {}).get("square", 0)
  return {k: round(v, 3) if isinstance(v, float) else v for k, v in summary.items()}


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--num_prompts", type=int, default=32)
  p.add_argument("--seeds", type=int, default=2)
  p.add_argument("--strengths", default="0.3,0.5")
  p.add_argument("--rounds", type=int, default=1)
  p.add_argument("--eps_scale", type=float, default=None)
  p.add_argument("--out", required=True)
  args = p.parse_args()
  gen = pipeline.load(args.workdir)
  prompts = run.heldout_prompts(gen.config.data, args.num_prompts)
  seeds = range(args.seeds)
  drawn = [pipeline.generate(gen, prompts, seed=s, eps_scale=args.eps_scale) for s in seeds]
  rows = [{"strength": None, "round": 0, **judged(prompts, drawn)}]
  print(rows[-1], flush=True)
  for strength in (float(s) for s in args.strengths.split(",")):
    videos = drawn
    for r in range(1, args.rounds + 1):
      videos = [pipeline.generate(gen, prompts, seed=100 * r + s, eps_scale=args.eps_scale,
                                  edit=v, strength=strength) for s, v in zip(seeds, videos)]
      rows.append({"strength": strength, "round": r, **judged(prompts, videos)})
      print(rows[-1], flush=True)
  results_io.save_json({"workdir": args.workdir, "step": gen.step, "rows": rows}, args.out)


if __name__ == "__main__":
  main()
