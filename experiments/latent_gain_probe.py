"""Are a latent DiT's round squares shrunken latents? A probe.

experiments/latent_noise_probe.py shows the shipped VAE's decoder draws a square round once its
latents shrink toward the mean (scaled by 0.5) or blur over their neighbours, while circles
survive both: the error a regressing denoiser makes. This samples held-out prompts with a latent
DiT, keeps the latents before the decoder, and decodes them again scaled by each gain: if shape
comes back at a gain above 1, the DiT's latents are right in direction and short in length.
The figures are the prompted shapes the judge reads right, per shape, at each gain.

  python experiments/latent_gain_probe.py --workdir=runs/shapes_latent [--num_prompts 32] \
      [--seeds 2] [--gains 1,1.15,1.3,1.5] [--out runs/latent_gain_probe.json]
"""

import argparse
import collections
import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from experiments import results_io  # noqa: E402
from sora_jax.data import captions, tokenizer  # noqa: E402
from sora_jax.eval import judge, run  # noqa: E402
from sora_jax.sample import pipeline, video_io  # noqa: E402
from sora_jax.train import step as step_lib  # noqa: E402


def sampled_latents(gen, prompts, seed: int) -> np.ndarray:
  """The DiT's latents for `prompts` with the run's sampler, not decoded."""
  d = gen.config.data
  dims = gen.latent.shape(d.frames, d.height, d.width)
  length = d.text_len + 1
  text = tokenizer.encode_batch(prompts, length)
  uncond = np.asarray(step_lib.null_text(len(prompts), length))
  return np.asarray(pipeline.sample_videos(
      gen.params, text, uncond, jax.random.key(seed), gen.frozen, graphdef=gen.graphdef,
      cfg=pipeline.sampler_config(gen.config), shape=(len(prompts),) + dims))


def shapes_by_gain(gen, prompts, seeds: int, gains) -> dict:
  """{gain: {prompted shape: [judged right, total]}}."""
  decode = jax.jit(lambda z: gen.latent.decode(gen.frozen, z, gen.config.data.frames))
  out = {g: collections.defaultdict(lambda: [0, 0]) for g in gains}
  for seed in range(seeds):
    z = sampled_latents(gen, prompts, seed)
    for gain in gains:
      videos = video_io.to_uint8(np.asarray(decode(gain * z)))
      for prompt, video in zip(prompts, videos):
        objects = captions.parse_prompt(prompt)
        right = judge.judge_video(video, objects)[0]["shape"]
        out[gain][objects[0]["shape"]][0] += bool(right)
        out[gain][objects[0]["shape"]][1] += 1
  return {g: dict(sorted(row.items())) for g, row in out.items()}


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True, help="a latent DiT's workdir")
  p.add_argument("--num_prompts", type=int, default=32)
  p.add_argument("--seeds", type=int, default=2)
  p.add_argument("--gains", default="1,1.15,1.3,1.5")
  p.add_argument("--out", default="runs/latent_gain_probe.json")
  args = p.parse_args()
  gen = pipeline.load(args.workdir)
  if gen.latent is None:
    raise SystemExit(f"{args.workdir} is a pixel DiT; this probe needs a latent one")
  prompts = run.heldout_prompts(gen.config.data, args.num_prompts)
  result = shapes_by_gain(gen, prompts, args.seeds, [float(g) for g in args.gains.split(",")])
  names = sorted({name for row in result.values() for name in row})
  print("| latent gain | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
  for gain, row in result.items():
    print(f"| {gain:g} | " + " | ".join(f"{row[n][0]} / {row[n][1]}" for n in names) + " |")
  results_io.save_json({"workdir": args.workdir, "step": gen.step, "prompts": len(prompts),
                        "seeds": args.seeds,
                        "shapes_by_gain": {str(k): v for k, v in result.items()}}, args.out)


if __name__ == "__main__":
  main()
