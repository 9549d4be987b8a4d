"""Does a trained DiT move objects the way the prompt says? A probe, not a benchmark.

For held-out test clips, the first frame is given (as a known frame, for a model built with
model.known_frames; else the first frame group is left clean) and the rest noised to time --t;
the model's x0 prediction for the later frames is read for where the object went by the middle
of the clip, once per prompted direction (same colour, shape, size, speed). A model that has
learned the dynamics moves the object along the prompted direction; one that has not leaves a
blob in place.

  python experiments/motion_probe.py --workdir=runs/demo --t 0.9 --clips 8
"""

import argparse
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


def centroids(video):
  """Per-frame (y, x) centre of lit pixels of float video [T, H, W, 3] in [-1, 1]; NaN if none."""
  mask = video.max(-1) > -0.5
  ys, xs = np.mgrid[:video.shape[1], :video.shape[2]]
  out = []
  for m in mask:
    out.append((ys[m].mean(), xs[m].mean()) if m.sum() >= 4 else (np.nan, np.nan))
  return np.array(out)


def probe(gen, clips: int, t_later: float, seed: int = 0) -> dict:
  config = gen.config
  if gen.latent is not None:
    raise ValueError("the probe reads pixels; point it at a pixel-space DiT")
  known_frames = config.model.get("known_frames", False)
  start = 0 if known_frames else config.model.patch[0]  # the first frame not given
  examples = [e for e in data_pipeline.eval_examples(config.data, "test")
              if len(e["objects"]) == 1][:clips]
  model = nnx.merge(gen.graphdef, gen.params)
  d = config.diffusion
  rows = []
  for i, ex in enumerate(examples):
    x0 = jnp.asarray(data_pipeline.to_unit_range(ex["video"]))[None]
    frames = x0.shape[1]
    t = jnp.asarray([[0.0] * start + [t_later] * (frames - start)])
    known, mask = (x0, jnp.zeros((1, frames)).at[0, 0].set(1.0)) if known_frames else (None, None)
    a, s = schedules.alpha_sigma(d.schedule, t, d.shift)
    eps = noise_lib.video_noise(jax.random.key(seed + i), x0.shape, d.frame_noise_corr)
    x_t = objectives.noisy(x0, eps, a, s)
    for direction, (dy, dx) in world.DIRECTIONS.items():
      obj = dict(ex["objects"][0], direction=direction)
      prompt = captions.caption([obj], "plain", np.random.default_rng(0))
      text = jnp.asarray(tokenizer.encode_batch([prompt], config.data.text_len + 1))
      pred = model(x_t, t, text, known, mask)
      x0_hat, _ = objectives.to_x0_eps(d.prediction, pred, x_t, a, s)
      c = centroids(np.asarray(x0_hat[0]))
      move = c[frames // 2] - c[start]  # (dy, dx) pixels by mid-clip (a bounce may follow)
      along = float(move[0] * dy + move[1] * dx)
      rows.append({"clip": i, "true": ex["objects"][0]["direction"], "prompted": direction,
                   "moved_along_prompt_px": along})
  along = [r["moved_along_prompt_px"] for r in rows if np.isfinite(r["moved_along_prompt_px"])]
  return {"t": t_later, "clips": len(examples), "mean_px_along_prompt": float(np.mean(along)),
          "share_moving_along_prompt": float(np.mean([a > 1.0 for a in along])), "rows": rows}


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--t", type=float, default=0.9)
  p.add_argument("--clips", type=int, default=8)
  args = p.parse_args()
  report = probe(pipeline.load(args.workdir), args.clips, args.t)
  print(json.dumps({k: v for k, v in report.items() if k != "rows"}))


if __name__ == "__main__":
  main()
