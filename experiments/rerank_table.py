"""Other verifiers on saved draws: what each would pick, from experiments/rerank_probe.py's JSON.

The probe saves every draw's denoising error per text and noise level (texts: the prompt, none,
the prompt with each other shape, then with each other direction). Scores here are error gaps
against the prompt's own error, summed over levels in eps space (as rerank.py scores) or in x0
space (each level divided by its SNR): "pmi" against no text; "shape margin" / "direction
margin" against the nearest other shape / direction. Each row is the judge's shape, direction
and squares drawn square over the picks, one a prompt; "mean draw" averages over all draws.

  python experiments/rerank_table.py experiments/results/best_of_n_2026-12-05/probe_*.json
"""

import json
import sys

import numpy as np

from sora_jax.diffusion import rerank, schedules

# where each text's rows sit in the probe's errors [draws, texts, levels, prompts]
OWN, NONE, SHAPES, DIRECTIONS = 0, 1, slice(2, 4), slice(4, 7)


def verifiers(errors, snr) -> dict:
  """{name: scores [draws, prompts]} for each verifier the saved texts allow."""
  out = {}
  for space, w in (("eps", np.ones_like(snr)), ("x0", 1.0 / snr)):
    e = (errors * w[None, None, :, None]).sum(2)  # [draws, texts, prompts]
    out[f"pmi ({space})"] = e[:, NONE] - e[:, OWN]
    out[f"shape margin ({space})"] = e[:, SHAPES].min(1) - e[:, OWN]
    if e.shape[1] > DIRECTIONS.start:
      out[f"direction margin ({space})"] = e[:, DIRECTIONS].min(1) - e[:, OWN]
  return out


def rows(result: dict, shift: float = 4.0) -> dict:
  """{row name: (shape, direction, squares drawn square)} for one probe JSON."""
  errors = np.asarray(result["errors"])
  shape, direction = np.asarray(result["shape_right"]), np.asarray(result["direction_right"])
  squares = np.array(["square" in p for p in result["prompts"]])
  alpha, sigma = schedules.alpha_sigma("cosine", rerank.level_times(errors.shape[2]), shift)
  snr = np.square(np.asarray(alpha) / np.asarray(sigma))
  prompts = np.arange(len(squares))
  table = {"mean draw": (shape.mean(), direction.mean(), shape[squares].mean(1).sum())}
  for name, score in verifiers(errors, snr).items():
    pick = score.argmax(0)
    table[name] = (shape[prompts, pick].mean(), direction[prompts, pick].mean(),
                   shape[prompts, pick][squares].sum())
  return table


def main():
  for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
      result = json.load(f)
    if "errors" not in result:
      print(f"{path}: no saved errors (the probe's first version)")
      continue
    print(f"{path} ({result.get('group', 'held_out')}, "
          f"{sum('square' in p for p in result['prompts'])} square prompts)")
    for name, (shape, direction, squares) in rows(result).items():
      print(f"  {name:26s} shape {shape:.3f}  direction {direction:.3f}  squares {squares:.2f}")


if __name__ == "__main__":
  main()
