"""Quality against training minutes: judge every checkpoint a run kept, plot the judge's figures.

  python experiments/quality_curve.py --workdir=runs/NAME [--num_prompts 32] [--seeds 2] \
      [--guidance G] [--eta E] [--shift F] [--attribute_guidance W ...] [--[no-]first_frame_pass] \
      [--[no-]draft_image] [--vae DIR] [--autoguidance A --guide_step S] [--steps 3000,3600] \
      [--out NAME]

Sampler flags are `sora-jax eval`'s (cli.SAMPLER_FLAGS, SAMPLER_SWITCHES) but --steps, which
here picks the checkpoints to judge.

For each checkpoint step in DIR, samples the held-out single-object plain prompts (the issue-4
bar's prompts) and scores them with the shapes judge. Training minutes at a step are the sum of
the logged intervals (train.log_every steps / steps_per_sec, from DIR/metrics.jsonl): wall time of
the steps, compile included, evaluation and checkpoint waits not. Writes DIR/quality_curve.json,
.md and .svg (one line per judged attribute, dashed lines at the issue-4 bars). Train with a
`train.max_to_keep` that keeps the checkpoints you want on the curve.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sora_jax import cli  # noqa: E402
from sora_jax.eval import run as eval_run  # noqa: E402
from sora_jax.sample import pipeline  # noqa: E402
from sora_jax.train import checkpoint  # noqa: E402

FIELDS = eval_run.FIELDS
SAMPLER_FLAGS = tuple(f for f in cli.SAMPLER_FLAGS if f[0] != "steps")
BARS = {"presence": 0.95, "colour": 0.95, "shape": 0.85, "direction": 0.90}  # issue 4
COLOURS = {"presence": "#444444", "colour": "#d62728", "shape": "#2ca02c", "size": "#9467bd",
           "direction": "#1f77b4"}


def minutes_at(workdir) -> dict:
  """{logged step: training minutes up to it} from DIR/metrics.jsonl."""
  out, total, last = {}, 0.0, 0
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    for line in f:
      row = json.loads(line)
      if "steps_per_sec" not in row:
        continue
      total += (row["step"] - last) / row["steps_per_sec"] / 60
      out[row["step"]], last = total, row["step"]
  return out


def curve(workdir, num_prompts: int, seeds: int, vae=None, only=None, guide=None,
          **sample_kw) -> list[dict]:
  """The judge's held-out figures at every kept checkpoint (or those in `only`), with what each
  prompted shape was judged; `vae` as pipeline.load's vae_workdir, `guide` its guide_step /
  guide_workdir (autoguidance's worse model, the same for every point), sample_kw as for
  pipeline.generate (None: the run's config)."""
  ckpt = checkpoint.Checkpointer(workdir, create=False)
  steps = sorted(ckpt.manager.all_steps())
  ckpt.close()
  if only:
    missing = sorted(set(only) - set(steps))
    if missing:
      raise SystemExit(f"--steps {missing}: {workdir} keeps checkpoints {steps}")
    steps = sorted(only)
  minutes = minutes_at(workdir)
  points, prompts = [], None
  for step in steps:
    gen = pipeline.load(workdir, step=step, vae_workdir=vae, **(guide or {}))
    prompts = prompts or eval_run.heldout_prompts(gen.config.data, num_prompts)  # one set for all
    report = eval_run.evaluate(gen, prompts, seeds=seeds, **sample_kw)
    logged = max((s for s in minutes if s <= step), default=None)
    points.append({"step": step, "minutes": minutes.get(logged, 0.0),
                   **{f: report["summary"].get(f) for f in FIELDS},
                   "shapes": eval_run.confusion(report, "shape")})
    print(json.dumps(points[-1]), flush=True)
  return points


def markdown(points) -> str:
  """One row a checkpoint; the last column: each prompted shape, judged right of all asked."""
  rows = ["| step | train minutes | " + " | ".join(FIELDS) + " | shapes right |",
          "|---" * (len(FIELDS) + 3) + "|"]
  for p in points:
    cells = [f"{p[f]:.2f}" if p[f] is not None else "-" for f in FIELDS]
    right = ", ".join(f"{shape} {row.get(shape, 0)}/{sum(row.values())}"
                      for shape, row in sorted(p.get("shapes", {}).items()))
    rows.append(f"| {p['step']} | {p['minutes']:.1f} | " + " | ".join(cells) + f" | {right} |")
  return "\n".join(rows)


def svg(points, title: str) -> str:
  """Each judged field against training minutes, dashed lines at the issue-4 bars."""
  lines = [(field, COLOURS[field], [(p["minutes"], p[field]) for p in points
                                    if p[field] is not None]) for field in FIELDS]
  bars = [(BARS[f], COLOURS[f]) for f in FIELDS if f in BARS]
  return line_chart(lines, title, bars=bars)


def line_chart(lines, title: str, *, bars=(), marks=(), x_label="training minutes", width=640,
               height=360, pad=50, legend=0) -> str:
  """An SVG line chart of values in [0, 1] (no plotting library needed). lines: (label, colour,
  [(x, y), ...]) each; bars: (y, colour) dashed horizontals; marks: x values of dotted
  verticals (a time budget, say); legend: px added on the right for long labels."""
  max_x = max([x for _, _, xy_s in lines for x, _ in xy_s] + list(marks) + [1.0])
  width += legend
  def xy(m, v):
    return pad + m / max_x * (width - 2 * pad - legend), height - pad - v * (height - 2 * pad)
  parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           'font-family="sans-serif" font-size="11">',
           f'<text x="{pad}" y="20" font-size="13">{title}</text>']
  for v in (0, 0.25, 0.5, 0.75, 1.0):
    x0, y = xy(0, v)
    x1, _ = xy(max_x, v)
    parts.append(f'<line x1="{x0}" y1="{y}" x2="{x1}" y2="{y}" stroke="#ddd"/>'
                 f'<text x="{pad - 30}" y="{y + 4}">{v:.2f}</text>')
  tick = 15 if max_x > 45 else 5
  for m in range(0, int(max_x) + 1, tick):
    x, y = xy(m, 0)
    parts.append(f'<text x="{x - 6}" y="{y + 16}">{m}</text>')
  parts.append(f'<text x="{width / 2 - 40}" y="{height - 12}">{x_label} (max {max_x:.1f})</text>')
  for m in marks:
    (x, y0), (_, y1) = xy(m, 0), xy(m, 1)
    parts.append(f'<line x1="{x}" y1="{y0}" x2="{x}" y2="{y1}" stroke="#888" '
                 'stroke-dasharray="1,3"/>')
  for value, colour in bars:
    (x0, y), (x1, _) = xy(0, value), xy(max_x, value)
    parts.append(f'<line x1="{x0}" y1="{y}" x2="{x1}" y2="{y}" stroke="{colour}" '
                 'stroke-dasharray="4,4" stroke-width="1"/>')
  for i, (label, colour, points) in enumerate(lines):
    at = [xy(x, y) for x, y in points]
    if at:
      parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
                   + " ".join(f"{x:.1f},{y:.1f}" for x, y in at) + '"/>')
      parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>' for x, y in at]
    parts.append(f'<text x="{width - pad - legend + 4}" y="{pad + 14 * i}" '
                 f'fill="{colour}">{label}</text>')
  return "\n".join(parts + ["</svg>"])


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--num_prompts", type=int, default=32)
  parser.add_argument("--seeds", type=int, default=2)
  # `sora-jax eval`'s sampler overrides, but --steps: here it picks checkpoints
  for name, kind in SAMPLER_FLAGS:
    parser.add_argument(f"--{name}", type=kind, help="default: the run's config")
  for name, text in cli.SAMPLER_SWITCHES:
    parser.add_argument(f"--{name}", action=argparse.BooleanOptionalAction,
                        help=f"{text}; default: the run's config")
  parser.add_argument("--vae", help="a latent DiT: decode with this VAE (as `sora-jax eval --vae`)")
  parser.add_argument("--guide_step", type=int, help="as `sora-jax eval --guide_step`")
  parser.add_argument("--guide_workdir", help="as `sora-jax eval --guide_workdir`")
  parser.add_argument("--steps", type=lambda text: [int(v) for v in text.split(",")],
                      help="comma-separated checkpoint steps to judge (default: every kept one)")
  parser.add_argument("--out", default="quality_curve",
                      help="file name (no extension) in --workdir for the .json / .md / .svg")
  args = parser.parse_args()
  sampler = {name: getattr(args, name) for name, _ in SAMPLER_FLAGS + cli.SAMPLER_SWITCHES}
  guide = {"guide_step": args.guide_step, "guide_workdir": args.guide_workdir}
  points = curve(args.workdir, args.num_prompts, args.seeds, vae=args.vae, only=args.steps,
                 guide=guide, **sampler)
  base = os.path.join(args.workdir, args.out)
  with open(base + ".json", "w", encoding="utf-8") as f:
    json.dump({"workdir": args.workdir, "num_prompts": args.num_prompts, "seeds": args.seeds,
               **sampler, "vae": args.vae, **guide, "points": points}, f, indent=2)
  table = markdown(points)
  with open(base + ".md", "w", encoding="utf-8") as f:
    f.write(table + "\n")
  with open(base + ".svg", "w", encoding="utf-8") as f:
    f.write(svg(points, f"held-out plain prompts, {os.path.basename(args.workdir.rstrip('/'))}"))
  print(table)
  print(f"wrote {base}.json, .md, .svg")


if __name__ == "__main__":
  main()
