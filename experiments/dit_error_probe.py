"""What error does a latent DiT make, and which decoder forgives it? A probe.

Held-out clips (ground truth known) are encoded, noised to where the last `strength` of the DDIM
chain begins, and denoised by the DiT toward their own plain caption (`sample --edit`, in latent
space). The DiT's latents are compared with the true ones: the error's size relative to the
latents, and how much of it is the blur / shrink that train/latent_errors.py draws (per clip, the
error regressed on the blur direction (3 x 3 mean - z) and the shrink direction (-z): median R^2
and coefficients). Then each VAE given decodes the DiT's latents and the judge reads each clip's
shape: a decoder that forgives the DiT's error keeps more of them.

  python experiments/dit_error_probe.py --workdir=runs/shapes_latent [--step N] \
      [--vaes assets/vae_tiny,assets/vae_tiny_tuned] [--strengths 0.1,0.2,0.4,0.6] [--clips 48] \
      [--out runs/dit_error_probe.json]
"""

import argparse
import collections
import json
import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from experiments import results_io  # noqa: E402
from sora_jax.data import pipeline as data_pipeline, shapes, tokenizer  # noqa: E402
from sora_jax.eval import judge  # noqa: E402
from sora_jax.models import latents  # noqa: E402
from sora_jax.sample import pipeline, video_io  # noqa: E402
from sora_jax.train import latent_errors, step as step_lib  # noqa: E402

BATCH = 16


def batched(fn, *arrays):
  return np.concatenate([np.asarray(fn(*(a[i:i + BATCH] for a in arrays)), np.float32)
                         for i in range(0, len(arrays[0]), BATCH)])


def denoised(gen, z0, prompts, strength: float) -> np.ndarray:
  """The DiT's latents for clean latents z0 noised to `strength` (one key per batch)."""
  length = gen.config.data.text_len + 1
  text = tokenizer.encode_batch(prompts, length)
  uncond = np.asarray(step_lib.null_text(len(prompts), length))
  cfg = pipeline.sampler_config(gen.config, first_frame_pass=False)
  run = lambda t, u, z: pipeline.sample_videos(
      gen.params, t, u, jax.random.key(0), gen.frozen, z, graphdef=gen.graphdef, cfg=cfg,
      shape=z.shape, strength=strength)
  return batched(run, text, uncond, z0)


def error_fit(z0, z) -> dict:
  """Size of z - z0 against z0, and how much of it per clip is blur and shrink."""
  err = (z - z0).reshape(len(z0), -1)
  blur = np.asarray(latent_errors.neighbourhood_mean(z0) - z0).reshape(len(z0), -1)
  shrink = -z0.reshape(len(z0), -1)
  r2, coef = [], []
  for e, b, s in zip(err, blur, shrink):
    basis = np.stack([b, s], 1)
    c = np.linalg.lstsq(basis, e, rcond=None)[0]
    r2.append(1.0 - np.sum((e - basis @ c) ** 2) / np.sum(e**2))
    coef.append(c)
  coef = np.array(coef)
  return {"relative_error": float(np.linalg.norm(err) / np.linalg.norm(z0)),
          "r2_median": float(np.median(r2)), "blur_median": float(np.median(coef[:, 0])),
          "shrink_median": float(np.median(coef[:, 1]))}


def shapes_kept(videos, made) -> dict:
  counts = collections.defaultdict(lambda: [0, 0])
  for video, (_, objects, _) in zip(videos, made):
    right = judge.judge_video(video, objects)[0]["shape"]
    counts[objects[0]["shape"]][0] += bool(right)
    counts[objects[0]["shape"]][1] += 1
  return dict(sorted(counts.items()))


def probe(workdir, step, vaes, strengths, clips: int, seed: int = 7) -> dict:
  gen = pipeline.load(workdir, step=step)
  rng = np.random.default_rng(seed)
  made = [shapes.make_clip(rng, frames=16, height=32, width=32, held_out=True)
          for _ in range(clips)]
  videos = data_pipeline.to_unit_range(np.stack([video for video, _, _ in made]))
  z0 = batched(jax.jit(lambda v: gen.latent.encode(gen.frozen, v)), videos)
  decoders = {}
  for vae in vaes:
    pipeline.decoding_vae(gen.config, vae)  # refuses a VAE of another latent space
    space, frozen = latents.load(vae)
    decoders[vae] = jax.jit(lambda z, space=space, frozen=frozen: space.decode(frozen, z, 16))
  out = {"workdir": workdir, "step": gen.step, "clips": clips, "strengths": {}}
  for strength in strengths:
    z = denoised(gen, z0, [texts["plain"] for _, _, texts in made], strength)
    row = error_fit(z0, z)
    for vae, decode in decoders.items():
      row[vae] = shapes_kept(video_io.to_uint8(batched(decode, z)), made)
    out["strengths"][strength] = row
    print(strength, json.dumps(row), flush=True)
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True, help="a latent DiT's workdir")
  p.add_argument("--step", type=int, help="default: the latest checkpoint")
  p.add_argument("--vaes", default="assets/vae_tiny,assets/vae_tiny_tuned")
  p.add_argument("--strengths", default="0.1,0.2,0.4,0.6")
  p.add_argument("--clips", type=int, default=48)
  p.add_argument("--out", default="runs/dit_error_probe.json")
  args = p.parse_args()
  result = probe(args.workdir, args.step, args.vaes.split(","),
                 [float(s) for s in args.strengths.split(",")], args.clips)
  results_io.save_json(result, args.out)


if __name__ == "__main__":
  main()
