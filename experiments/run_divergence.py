"""Where two training runs part: the first logged step whose loss or gradient norm differs, and
how far their losses drift apart after it.

  python experiments/run_divergence.py runs/a runs/b --window 400 --out FILE.json

A run repeats bit for bit on one machine (same config, data, seed and code). Across machines it
need not: XLA compiles for each CPU's instruction set, and one rounding difference grows through
the steps. `XLA_FLAGS=--xla_cpu_max_isa=AVX2` on an AVX-512 machine stands in for such a host.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import results_io  # noqa: E402


def read_metrics(workdir: str) -> dict[int, dict]:
  """{step: logged row} from DIR/metrics.jsonl (a resumed run's repeated steps: the last)."""
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    return {row["step"]: row for row in map(json.loads, f)}


def divergence(a: dict[int, dict], b: dict[int, dict], window: int) -> dict:
  """First step where the runs' loss or grad_norm differ (None: never) and, per window of steps,
  each run's mean loss and the largest loss difference, over the steps both logged."""
  steps = sorted(set(a) & set(b))
  if not steps:
    raise ValueError("the runs share no logged step")
  first = next((s for s in steps
                if (a[s]["loss"], a[s]["grad_norm"]) != (b[s]["loss"], b[s]["grad_norm"])), None)
  windows = []
  for lo in range(0, steps[-1], window):
    inside = [s for s in steps if lo < s <= lo + window]
    if inside:
      windows.append({
          "steps": f"{lo + 1}-{lo + window}",
          "mean_loss_a": sum(a[s]["loss"] for s in inside) / len(inside),
          "mean_loss_b": sum(b[s]["loss"] for s in inside) / len(inside),
          "max_abs_loss_diff": max(abs(a[s]["loss"] - b[s]["loss"]) for s in inside)})
  return {"steps_compared": len(steps), "first_differing_step": first, "windows": windows}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("run_a")
  p.add_argument("run_b")
  p.add_argument("--window", type=int, default=500, help="steps per row of the table")
  p.add_argument("--out", default="", help="also save the result as JSON here")
  args = p.parse_args(argv)
  result = divergence(read_metrics(args.run_a), read_metrics(args.run_b), args.window)
  result.update(run_a=args.run_a, run_b=args.run_b)
  first = result["first_differing_step"]
  print(f"{result['steps_compared']} logged steps compared; "
        + ("identical at every one" if first is None else f"first difference at step {first}"))
  print("| steps | mean loss A | mean loss B | largest |A - B| |\n|---|---|---|---|")
  for w in result["windows"]:
    print(f"| {w['steps']} | {w['mean_loss_a']:.4f} | {w['mean_loss_b']:.4f} | "
          f"{w['max_abs_loss_diff']:.2e} |")
  if args.out:
    results_io.save_json(result, args.out)


if __name__ == "__main__":
  main()
