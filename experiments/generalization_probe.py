"""Does the DiT memorise its train clips? The denoising loss on train clips against clips it
never saw, checkpoint by checkpoint.

Train clip i is drawn from its own seed (data/shapes.py), so indices past `data.num_train` are
fresh clips of the same world. Both sets (the first N train clips and N fresh ones) are encoded by
the run's VAE, captioned in the plain register, and scored by the training objective
(`step.denoising_errors`, no known frames, tokens not routed) under the same noise draws: the
gap between the two losses is what the model knows of its train clips beyond the world.

  python experiments/generalization_probe.py --workdir=runs/shapes_quality \
      [--steps 1800,3600,5400] [--clips 1024] [--draws 2] [--out runs/generalization.json]
"""

import argparse
import dataclasses
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from experiments import results_io  # noqa: E402
from sora_jax.data import pipeline as data_pipeline, shapes, tokenizer  # noqa: E402
from sora_jax.sample import pipeline  # noqa: E402
from sora_jax.train import checkpoint, step as step_lib  # noqa: E402

BATCH = 32


def clips(config, start: int, count: int):
  """Train-split clips start .. start + count - 1 (past num_train: fresh ones) and captions."""
  d = config.data
  videos, texts = [], []
  for index in range(start, start + count):
    video, _, caption = shapes.clip_at("train", index, frames=d.frames, height=d.height,
                                       width=d.width, max_objects=d.get("max_objects", 1))
    videos.append(video)
    texts.append(caption["plain"])
  return data_pipeline.to_unit_range(np.stack(videos)), texts


def objective(gen):
  """The jitted training objective of `gen`'s model (captions kept, no known frames); one compile
  serves every checkpoint of the run."""
  cfg = dataclasses.replace(step_lib.StepConfig.from_config(gen.config, gen.latent),
                            caption_dropout=0.0, known_frames_prob=0.0)

  @jax.jit
  def loss(params, z, t, key):
    model = nnx.merge(gen.graphdef, params)
    return jnp.mean(step_lib.denoising_errors(model, z, t, key, cfg).weighted)

  return loss


def mean_loss(loss, params, z0, text, draws: int) -> float:
  """The objective's mean over clips and `draws` noise draws (keys fixed per batch position)."""
  total = []
  for draw in range(draws):
    for i in range(0, len(z0), BATCH):
      key = jax.random.key(1000 * draw + i)
      total.append(float(loss(params, z0[i:i + BATCH], text[i:i + BATCH], key)))
  return float(np.mean(total))


def encoded_sets(gen, count: int) -> dict:
  """{"train" | "fresh": (latents, tokens)} of `count` clips each, encoded by `gen`'s VAE."""
  config = gen.config
  encode = jax.jit(lambda v: gen.latent.encode(gen.frozen, v))
  sets = {}
  for name, start in (("train", 0), ("fresh", int(config.data.num_train))):
    videos, texts = clips(config, start, count)
    z = np.concatenate([np.asarray(encode(videos[i:i + BATCH]))
                        for i in range(0, count, BATCH)])
    sets[name] = (z, np.asarray(tokenizer.encode_batch(texts, config.data.text_len + 1)))
  return sets


def probe(workdir, steps, count: int, draws: int) -> dict:
  rows, sets, loss = [], None, None
  for step in steps:
    gen = pipeline.load(workdir, step=step)
    if sets is None:  # the VAE and the model's graph are the run's, the same at every checkpoint
      sets, loss = encoded_sets(gen, count), objective(gen)
    row = {"step": gen.step,
           **{name: mean_loss(loss, gen.params, z, t, draws) for name, (z, t) in sets.items()}}
    row["gap"] = row["fresh"] - row["train"]
    print(f"step {row['step']:6d}  train {row['train']:.4f}  fresh {row['fresh']:.4f}  "
          f"gap {row['gap']:+.4f} ({100 * row['gap'] / row['train']:+.1f}%)", flush=True)
    rows.append(row)
  return {"workdir": workdir, "clips": count, "draws": draws, "rows": rows}


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True, help="a latent DiT's workdir")
  p.add_argument("--steps", help="checkpoints, comma-separated (default: all)")
  p.add_argument("--clips", type=int, default=1024)
  p.add_argument("--draws", type=int, default=2)
  p.add_argument("--out", default="runs/generalization_probe.json")
  args = p.parse_args()
  if args.steps:
    steps = [int(s) for s in args.steps.split(",")]
  else:
    ckpt = checkpoint.Checkpointer(args.workdir, create=False)
    steps = sorted(ckpt.manager.all_steps())
    ckpt.close()
  results_io.save_json(probe(args.workdir, steps, args.clips, args.draws), args.out)


if __name__ == "__main__":
  main()
