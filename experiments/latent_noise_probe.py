"""Does a VAE's decoder keep each shape when its latents are off? A probe.

Held-out clips (ground truth known) are encoded, their normalised latents (the units the DiT
denoises in) perturbed, decoded, and judged. A decoder that loses a shape's defining pixels (a
square's corners) under small latent error makes a DiT that is nearly right draw the wrong shape;
one that keeps them puts the blame on the DiT. `--kind` picks the error, of size s:
  noise   Gaussian noise of std s (an unbiased but noisy DiT)
  shrink  the latents scaled by 1 - s toward 0, the channel mean (a DiT that regresses to the mean)
  blur    each latent pixel mixed with its 3 x 3 neighbourhood mean at weight s (a DiT that
          averages over where the object might be)

  python experiments/latent_noise_probe.py [--vae assets/vae_tiny] [--clips 48] [--kind noise] \
      [--sigmas 0,0.05,0.1,0.2,0.3] [--out runs/latent_noise_probe.json]
"""

import argparse
import collections
import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from experiments import results_io  # noqa: E402
from sora_jax.data import pipeline, shapes  # noqa: E402
from sora_jax.eval import judge  # noqa: E402
from sora_jax.models import latents  # noqa: E402
from sora_jax.sample import video_io  # noqa: E402
from sora_jax.train import latent_errors  # noqa: E402

BATCH = 16


def perturb(z, kind: str, s: float) -> np.ndarray:
  """Latents [N, T, h, w, C] off by an error of `kind` and size s (see the module docstring)."""
  kinds = ("noise", "shrink", "blur")
  if kind not in kinds:
    raise ValueError(f"--kind {kind!r}; allowed: {', '.join(kinds)}")
  eps = np.random.default_rng(1).standard_normal(z.shape).astype(np.float32)
  sizes = {k: s if k == kind else 0.0 for k in kinds}
  return np.asarray(latent_errors.perturb(z, eps=eps, **sizes))


def shapes_kept(vae_dir, clips: int, sigmas, seed: int = 7, kind: str = "noise") -> dict:
  """{sigma: {shape: [kept, total]}} over `clips` held-out 16 x 32 x 32 clips."""
  space, frozen = latents.load(vae_dir)
  rng = np.random.default_rng(seed)
  made = [shapes.make_clip(rng, frames=16, height=32, width=32, held_out=True)
          for _ in range(clips)]
  videos = pipeline.to_unit_range(np.stack([video for video, _, _ in made]))
  encode = jax.jit(space.encode)
  decode = jax.jit(lambda z: space.decode(frozen, z, videos.shape[1]))
  z = np.concatenate([np.asarray(encode(frozen, videos[i:i + BATCH]))
                      for i in range(0, clips, BATCH)])
  out = {}
  for sigma in sigmas:
    noisy = perturb(z, kind, sigma)
    recon = video_io.to_uint8(np.concatenate([np.asarray(decode(noisy[i:i + BATCH]))
                                              for i in range(0, clips, BATCH)]))
    counts = collections.defaultdict(lambda: [0, 0])
    for video, (_, objects, _) in zip(recon, made):
      judged = judge.judge_video(video, objects)[0]
      counts[objects[0]["shape"]][0] += bool(judged["shape"])
      counts[objects[0]["shape"]][1] += 1
    out[sigma] = dict(sorted(counts.items()))
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--vae", default="assets/vae_tiny", help="a VAE workdir or export")
  p.add_argument("--clips", type=int, default=48)
  p.add_argument("--sigmas", default="0,0.05,0.1,0.2,0.3", help="error sizes s")
  p.add_argument("--kind", default="noise", choices=("noise", "shrink", "blur"))
  p.add_argument("--out", default="runs/latent_noise_probe.json")
  args = p.parse_args()
  sigmas = [float(s) for s in args.sigmas.split(",")]
  result = shapes_kept(args.vae, args.clips, sigmas, kind=args.kind)
  names = sorted({name for row in result.values() for name in row})
  print(f"| latent {args.kind} | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
  for sigma, row in result.items():
    print(f"| {sigma:g} | " + " | ".join(f"{row[n][0]} / {row[n][1]}" for n in names) + " |")
  results_io.save_json({str(k): v for k, v in result.items()}, args.out)


if __name__ == "__main__":
  main()
