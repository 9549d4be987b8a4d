"""Seconds a train step of config variants, timed in alternating rounds in one process.

  python experiments/step_time.py --config=configs/tiny_cpu.py --latent_cache=runs/cache20k \
      --variant base= --variant w192=model.width=192 --variant bf16=model.dtype=bfloat16 \
      --rounds 3 --out runs/step_time.json

This machine's speed drifts by 10-30% over an hour, so variants measured in separate runs do
not compare; here every round times each variant once, in turn, and the table shows every round.
A variant is NAME=KEY=VALUE[,KEY=VALUE...] (an empty override list: the config as it is; a
tuple value keeps its commas: p1=model.patch=(1,1,1),model.width=128). The
JSON also holds the f32 and bf16 FLOP/s of a large matmul measured in the same process.
"""

import argparse
import os
import re
import sys

import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import benchmark, results_io  # noqa: E402
from sora_jax import configlib  # noqa: E402


def parse_variant(text: str) -> tuple[str, list[str]]:
  """Splits NAME=KEY=VALUE[,KEY=VALUE...] into NAME and its --config.KEY=VALUE flags."""
  name, _, overrides = text.partition("=")
  if not name:
    raise SystemExit(f"--variant {text!r}: must be NAME=KEY=VALUE[,KEY=VALUE...] or NAME=")
  parts = re.split(r",(?![^()]*\))", overrides)  # a tuple value keeps its commas: patch=(1,1,1)
  return name, [f"--config.{o}" for o in parts if o]


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--config", default="configs/tiny_cpu.py")
  p.add_argument("--variant", action="append", required=True, help="NAME=KEY=VALUE[,...]")
  p.add_argument("--latent_cache", default="",
                 help="time a latent DiT's step on pre-encoded latents from this cache")
  p.add_argument("--rounds", type=int, default=2)
  p.add_argument("--steps", type=int, default=15, help="timed steps per variant and round")
  p.add_argument("--out", default="runs/step_time.json")
  args = p.parse_args()
  variants = dict(parse_variant(v) for v in args.variant)
  configs = {name: configlib.load(args.config, overrides) for name, overrides in variants.items()}
  for config in configs.values():
    if args.latent_cache:
      config.data.latent_cache = args.latent_cache
  seconds = {name: [] for name in variants}
  for _ in range(args.rounds):
    for name, config in configs.items():
      s, _ = benchmark.train_step_time(config, args.steps, cached=bool(args.latent_cache))
      seconds[name].append(round(s, 4))
      print(f"{name}: {seconds[name]}", flush=True)
  matmul = {dt.__name__: benchmark.matmul_peak(dtype=dt) / 1e9
            for dt in (jnp.float32, jnp.bfloat16)}
  print("| variant | overrides | seconds a step, each round |\n|---|---|---|")
  for name, overrides in variants.items():
    print(f"| {name} | {' '.join(overrides) or '(none)'} | {seconds[name]} |")
  print("matmul GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in matmul.items()))
  row = {"config": args.config, "latent_cache": args.latent_cache, "steps": args.steps,
         "variants": {k: " ".join(v) for k, v in variants.items()}, "seconds": seconds,
         "matmul_gflops": matmul}
  results_io.save_json(row, args.out)


if __name__ == "__main__":
  main()
