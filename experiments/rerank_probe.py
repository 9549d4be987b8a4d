"""Can a model pick its own best draw? A best-of-N probe with the DiT as its own verifier.

Each prompt of a group (issue 4's held-out pairs, or seen ones) is drawn with `candidates`
sampler seeds; every draw is encoded back to latents and scored by the model's own denoising
error at `levels` noise levels (one noise draw each, shared by all candidates of a prompt): the
diffusion classifier of Li et al. 2023, as sora_jax/diffusion/rerank.py scores for
`sample.candidates`, here on the decoded videos. Two scores: "pmi", rerank's (the error told
nothing minus the error told the prompt); "contrast", the smallest error gap between the prompt
with its shape word swapped for each other shape and the prompt itself (the errors with each
other direction are saved too, for experiments/rerank_table.py). The judge reads every draw; the
table compares the first draw, the eval's two seeds, the mean draw, each score's pick (of all
draws, and best-of-half at two seeds, as `--candidates` draws for `--seeds 2`), and the oracle.

  python experiments/rerank_probe.py --workdir=runs/r13re --candidates 8 --levels 16 \
      --eps_scale 1.15 [--group seen] --out experiments/results/NAME/probe_r13re_held_out.json
"""

import argparse
import functools
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from experiments import results_io  # noqa: E402
from experiments.restart_probe import judged  # noqa: E402
from sora_jax.data import captions, pipeline as data_pipeline, tokenizer, world  # noqa: E402
from sora_jax.diffusion import rerank  # noqa: E402
from sora_jax.eval import judge, run  # noqa: E402
from sora_jax.sample import pipeline  # noqa: E402
from sora_jax.train import step as step_lib  # noqa: E402


def other_directions(prompt: str) -> list[str]:
  """The prompt with its (one) object's direction word swapped for each other direction, in
  world.DIRECTIONS' order ("slides to the left" -> "slides up", not "to the up")."""
  asked = captions.parse_prompt(prompt)[0]["direction"]
  bare = prompt.replace("to the ", "")
  return [bare.replace(asked, d) for d in world.DIRECTIONS if d != asked]


@functools.partial(jax.jit, static_argnames=("graphdef", "cfg", "levels"))
def denoising_errors(params, z0, texts, key, *, graphdef, cfg, levels):
  """rerank.denoising_error of z0 [B, ...] for each text [P, B, L] at each of `levels` noise
  levels, the noise of a level shared by every row, as rerank.gap_scores draws it: [K, P, B]."""
  model = nnx.merge(graphdef, params)

  def level(k):
    eps, t = rerank.level_noise(cfg, key, k, z0.shape), rerank.level_times(levels)[k]
    return jnp.stack([rerank.denoising_error(model, cfg, z0, text, t, eps) for text in texts])
  return jax.lax.map(level, jnp.arange(levels))


def score_draws(gen, prompts, videos, levels: int, seed: int) -> dict:
  """{"pmi": [N], "contrast": [N], "errors": [P, K, N]} for one draw per prompt (uint8 videos
  [N, T, H, W, 3]), the texts P: the prompt, none, the prompt with each other shape (2), with
  each other direction (3)."""
  z0 = gen.latent.encode(gen.frozen, jnp.asarray(data_pipeline.to_unit_range(videos)))
  length = gen.config.data.text_len + 1
  texts = [tokenizer.encode_batch(prompts, length),
           np.asarray(step_lib.null_text(len(prompts), length))]
  for swap in (captions.other_shapes, other_directions):
    texts += pipeline.swapped_tokens(swap, prompts, length)
  err = denoising_errors(gen.params, z0, tuple(jnp.asarray(t) for t in texts),
                         jax.random.key(seed), graphdef=gen.graphdef,
                         cfg=pipeline.sampler_config(gen.config), levels=levels)
  levels_err = np.asarray(err).transpose(1, 0, 2)  # [P, K, N]
  err = levels_err.mean(1)
  return {"pmi": err[1] - err[0], "contrast": np.minimum(err[2], err[3]) - err[0],
          "errors": levels_err}


def picks(prompts, draws, scores, verdicts) -> dict:
  """{row: judged summary} of the draws [prompts, candidates, ...] each way of picking keeps."""
  n = draws.shape[1]
  idx = np.arange(len(prompts))
  keep = lambda choice: draws[idx, choice]
  rows = {"first draw": judged(prompts, [draws[:, 0]]),
          "seeds 0 and 1 (the eval)": judged(prompts, [keep(0), keep(1)])}
  half = n // 2  # two seeds of best-of-half, as the eval's --seeds 2 would draw
  for name, s in scores.items():
    two = [keep(s[:, :half].argmax(1)), keep(half + s[:, half:].argmax(1))]
    rows[f"{name} best-of-{half}, 2 seeds"] = judged(prompts, two)
  per_draw = [judged(prompts, [draws[:, c]]) for c in range(n)]
  rows["mean draw"] = {k: round(float(np.mean([r[k] for r in per_draw])), 3)
                       for k in per_draw[0] if isinstance(per_draw[0][k], (int, float))}
  for name, s in scores.items():
    rows[f"{name} pick"] = judged(prompts, [keep(s.argmax(1))])
  rows["oracle pick"] = judged(prompts, [keep(verdicts.argmax(1))])
  return rows


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--group", default="held_out", choices=("held_out", "seen"))
  p.add_argument("--num_prompts", type=int, default=32)
  p.add_argument("--candidates", type=int, default=8)
  p.add_argument("--levels", type=int, default=8)
  p.add_argument("--eps_scale", type=float, default=None)
  p.add_argument("--out", required=True)
  args = p.parse_args()
  gen = pipeline.load(args.workdir)
  prompts = run.group_prompts(gen.config.data, args.group, args.num_prompts)
  draws = np.stack([pipeline.generate(gen, prompts, seed=s, eps_scale=args.eps_scale)
                    for s in range(args.candidates)], 1)  # [prompts, candidates, T, H, W, 3]
  scores = {k: np.zeros(draws.shape[:2]) for k in ("pmi", "contrast")}
  errors = []  # per candidate [texts, levels, prompts]: for other weightings, offline
  for c in range(args.candidates):
    scored = score_draws(gen, prompts, draws[:, c], args.levels, seed=1234)
    errors.append(np.round(scored.pop("errors"), 5).tolist())  # ~1e-5 of errors ~0.1-1
    for k, v in scored.items():
      scores[k][:, c] = v
  judged = [[judge.judge_video(draws[i, c], captions.parse_prompt(q))[0]
             for c in range(args.candidates)] for i, q in enumerate(prompts)]
  field = lambda k: np.array([[bool(o[k]) for o in row] for row in judged])
  verdicts = field("shape") & field("direction") & field("colour")
  rows = picks(prompts, draws, scores, verdicts)
  for name, row in rows.items():
    print(f"{name:14s} {row}")
  results_io.save_json({"workdir": args.workdir, "group": args.group, "step": gen.step,
                        "rows": rows,
                        "scores": {k: v.tolist() for k, v in scores.items()},
                        "all_right": verdicts.tolist(), "prompts": prompts,
                        "shape_right": field("shape").tolist(),
                        "direction_right": field("direction").tolist(),
                        "errors": errors}, args.out)


if __name__ == "__main__":
  main()
