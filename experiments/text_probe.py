"""Which caption words does a trained pixel DiT use, and can it carry a given frame? A probe.

For single-object test clips noised to time t, the x0 error of the model's prediction is measured
with the true plain caption, with its direction reversed, with another colour or shape, and
with the empty caption. A model that uses a word predicts worse when the word is wrong. For a
model built with model.known_frames the same runs with the first frame given ("i2v"), and the
error of that known frame itself is reported: a model that can carry a given frame through its
tokens predicts it almost exactly.

  python experiments/text_probe.py --workdir=runs/demo [--step N] [--clips 24]
"""

import argparse
import functools
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sora_jax.data import captions, pipeline as data_pipeline, tokenizer, world  # noqa: E402
from sora_jax.diffusion import noise as noise_lib, objectives, schedules  # noqa: E402
from sora_jax.sample import pipeline  # noqa: E402

REVERSE = {"left": "right", "right": "left", "up": "down", "down": "up"}
OTHER_SHAPE = {"circle": "square", "square": "circle", "triangle": "circle"}  # the nearest other
TIMES = (0.2, 0.4, 0.6, 0.8, 0.9, 0.97)
NOISE_DRAWS = 4


def caption_variants(examples) -> dict:
  """Plain captions of each clip's object: as it is, direction reversed, colour swapped."""
  def plain(change):
    return [captions.caption([change(dict(e["objects"][0]))], "plain", np.random.default_rng(0))
            for e in examples]
  other_colour = lambda c: next(p for p in world.PALETTE if p != c)
  return {"true": plain(lambda o: o),
          "reversed_direction": plain(lambda o: dict(o, direction=REVERSE[o["direction"]])),
          "other_colour": plain(lambda o: dict(o, colour=other_colour(o["colour"]))),
          "other_shape": plain(lambda o: dict(o, shape=OTHER_SHAPE[o["shape"]])),
          "empty": [""] * len(examples)}


def probe(gen, clips: int) -> list[dict]:
  config, d = gen.config, gen.config.diffusion
  if gen.latent is not None:
    raise ValueError("the probe reads pixels; point it at a pixel-space DiT")
  examples = [e for e in data_pipeline.eval_examples(config.data, "test")
              if len(e["objects"]) == 1][:clips]
  model = nnx.merge(gen.graphdef, gen.params)
  known_frames = config.model.get("known_frames", False)
  x0 = jnp.asarray(np.stack([data_pipeline.to_unit_range(e["video"]) for e in examples]))

  @functools.partial(jax.jit, static_argnames="first_known")
  def frame_errors(t, text, key, first_known):
    a, s = schedules.alpha_sigma(d.schedule, t, d.shift)
    x_t = objectives.noisy(x0, noise_lib.video_noise(key, x0.shape, d.frame_noise_corr), a, s)
    mask = jnp.zeros(x0.shape[:2]).at[:, 0].set(float(first_known))
    pred = model(x_t, t, text, x0, mask) if known_frames else model(x_t, t, text)
    x0_hat, _ = objectives.to_x0_eps(d.prediction, pred, x_t, a, s)
    return jnp.mean((x0_hat - x0) ** 2, axis=(0, 2, 3, 4))  # [T]

  texts = {k: jnp.asarray(tokenizer.encode_batch(v, config.data.text_len + 1))
           for k, v in caption_variants(examples).items()}
  rows = []
  for mode in ("t2v", "i2v") if known_frames else ("t2v",):
    for t_value in TIMES:
      t = jnp.full((len(examples),), t_value)
      row = {"mode": mode, "t": t_value}
      for name, text in texts.items():
        errs = np.mean([frame_errors(t, text, jax.random.key(k), mode == "i2v")
                        for k in range(NOISE_DRAWS)], axis=0)
        row[name] = float(errs.mean())
        if name == "true" and mode == "i2v":
          row["known_frame"] = float(errs[0])
      rows.append(row)
  return rows


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--step", type=int)
  p.add_argument("--clips", type=int, default=24)
  args = p.parse_args()
  rows = probe(pipeline.load(args.workdir, step=args.step), args.clips)
  keys = [k for k in rows[0] if k not in ("mode", "t")] + (["known_frame"] if len(rows) > 6 else [])
  keys = list(dict.fromkeys(keys))
  print("| mode | t | " + " | ".join(f"x0 MSE, {k} caption" if k != "known_frame" else
                                      "known frame's MSE" for k in keys) + " |")
  print("|---" * (len(keys) + 2) + "|")
  for r in rows:
    print(f"| {r['mode']} | {r['t']} | " + " | ".join(
        f"{r[k]:.4f}" if k in r else "" for k in keys) + " |")
  out = os.path.join(args.workdir, "eval", "text_probe.json")
  os.makedirs(os.path.dirname(out), exist_ok=True)
  with open(out, "w", encoding="utf-8") as f:
    json.dump(rows, f, indent=2)
  print(f"saved {out}")


if __name__ == "__main__":
  main()
