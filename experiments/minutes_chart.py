"""Several runs' quality against training minutes on one chart: issue 4's curve across seeds.

  python experiments/minutes_chart.py --run s0=experiments/results/.../r13_quality_curve.json \
      --run s2=runs/lc9s2/quality_curve.json --budget 45 --out experiments/results/DIR/minutes

Each --run is LABEL=PATH to a JSON that experiments/quality_curve.py wrote (one line a run).
Writes OUT_squares.svg (held-out squares drawn square, of those asked: the figure that fails),
OUT_shape.svg and OUT_direction.svg with the bars dashed and the budget dotted, and OUT.md with
every point.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import quality_curve, results_io  # noqa: E402

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
# The eval's 64 held-out draws ask for 20 squares, 22 circles and 22 triangles: with every circle
# and triangle right, shape >= 0.85 needs 11 squares (55 / 64 = 0.86; 10 give 0.84).
CHARTS = {"squares": 11 / 20, "shape": quality_curve.BARS["shape"],
          "direction": quality_curve.BARS["direction"]}


def squares(point) -> tuple[int, int]:
  """(prompted squares judged square, prompted squares) at a point."""
  judged = point.get("shapes", {}).get("square", {})
  return judged.get("square", 0), sum(judged.values())


def value(point, field) -> float | None:
  """A point's figure for a chart; "squares" is the share drawn square (None: none asked)."""
  if field != "squares":
    return point.get(field)
  right, asked = squares(point)
  return right / asked if asked else None


def parse_run(text: str) -> tuple[str, list[dict]]:
  """LABEL=PATH -> (label, the points of that quality_curve JSON)."""
  label, sep, path = text.partition("=")
  if not (label and sep and path):
    raise SystemExit(f"--run {text!r}: must be LABEL=PATH to a quality_curve JSON")
  try:
    with open(path, encoding="utf-8") as f:
      return label, json.load(f)["points"]
  except (OSError, ValueError, KeyError) as e:
    raise SystemExit(f"--run {text!r}: cannot read its points: {e}") from None


def markdown(runs: dict) -> str:
  rows = ["| run | step | train minutes | squares right | shape | direction |", "|---" * 6 + "|"]
  for label, points in runs.items():
    for p in points:
      right, asked = squares(p)
      rows.append(f"| {label} | {p['step']} | {p['minutes']:.1f} | {right} / {asked} | "
                  f"{p['shape']:.2f} | {p['direction']:.2f} |")
  return "\n".join(rows)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--run", action="append", required=True, help="LABEL=PATH (repeat)")
  parser.add_argument("--budget", type=float, default=45.0, help="minutes, drawn dotted")
  parser.add_argument("--out", required=True, help="path prefix of the files written")
  args = parser.parse_args()
  runs = dict(parse_run(r) for r in args.run)
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  for field, bar in CHARTS.items():
    lines = [(label, PALETTE[i % len(PALETTE)],
              [(p["minutes"], v) for p in points if (v := value(p, field)) is not None])
             for i, (label, points) in enumerate(runs.items())]
    chart = quality_curve.line_chart(
        lines, f"held-out {field} against training minutes", marks=[args.budget],
        bars=[(bar, "#444444")], legend=6 * max(map(len, runs)))
    with open(f"{args.out}_{field}.svg", "w", encoding="utf-8") as f:
      f.write(chart)
  table = markdown(runs)
  with open(args.out + ".md", "w", encoding="utf-8") as f:
    f.write(table + "\n")
  results_io.save_json({"budget": args.budget, "runs": runs}, args.out + ".json")
  print(table)


if __name__ == "__main__":
  main()
