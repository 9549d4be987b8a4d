"""How well a trained VAE keeps what matters: PSNR and the judge's attributes on held-out clips."""

import json
import os

import numpy as np
from flax import nnx

from sora_jax.data import pipeline
from sora_jax.eval import judge
from sora_jax.models import vae as vae_lib
from sora_jax.sample import video_io
from sora_jax.train import vae_loss

ATTRIBUTES = ("presence", "colour", "shape", "size", "direction")


def reconstruct(trained, videos, batch: int = 16) -> np.ndarray:
  """uint8 clips [N, T, H, W, 3] -> their uint8 reconstructions through the latent means."""
  ft = trained.config.vae.factors[0]

  @nnx.jit
  def roundtrip(model, video):
    padded, _ = vae_lib.pad_frames(video, ft)
    return model.decode(model.encode(padded)[0])[:, :video.shape[1]]

  model = nnx.merge(trained.graphdef, trained.params)
  out = [np.asarray(roundtrip(model, pipeline.to_unit_range(videos[i:i + batch])))
         for i in range(0, len(videos), batch)]
  return video_io.to_uint8(np.concatenate(out))


def psnr(a_uint8, b_uint8) -> float:
  """Mean over clips of the PSNR (dB) between uint8 clips, on the [-1, 1] scale (peak 2)."""
  err = (pipeline.to_unit_range(a_uint8) - pipeline.to_unit_range(b_uint8)) ** 2
  return float(np.mean(vae_loss.psnr(err.reshape(len(err), -1).mean(1))))


def preserved(truth: list, recon: list) -> float:
  """Share of clips whose judged attributes on the reconstruction match every one the judge
  gets right on the original (so the judge's own misses, e.g. occlusion, are not counted)."""
  kept = []
  for t_objs, r_objs in zip(truth, recon):
    kept.append(all(r[f] for t, r in zip(t_objs, r_objs) for f in ATTRIBUTES
                    if t[f] is not None and t[f]))
  return float(np.mean(kept))


def evaluate(trained, data_cfg, limit: int | None = None) -> dict:
  """PSNR of clips and of single frames (images), compression factor, attributes preserved."""
  examples = pipeline.eval_examples(data_cfg, "test", limit)
  videos = np.stack([ex["video"] for ex in examples])  # [N, T, H, W, 3]
  recon = reconstruct(trained, videos)
  images = videos[:, :1]
  truth = [judge.judge_video(ex["video"], ex["objects"]) for ex in examples]
  judged = [judge.judge_video(r, ex["objects"]) for r, ex in zip(recon, examples)]
  v = trained.config.vae
  t, h, w = videos.shape[1:4]
  latent = vae_lib.latent_frames(t, v.factors[0]) * (h // v.factors[1]) * (w // v.factors[2])
  return {"step": trained.step, "clips": len(videos), "psnr": psnr(videos, recon),
          "psnr_image": psnr(images, reconstruct(trained, images)),
          "compression": float(videos[0].size / (latent * v.latent_channels)),
          "preserved": preserved(truth, judged), "judge_truth": judge.summarize(truth),
          "judge_recon": judge.summarize(judged)}


def markdown(report: dict) -> str:
  s = report["judge_recon"]
  return "\n".join([
      "| step | clips | PSNR (dB) | image PSNR (dB) | compression | attributes kept | "
      + " | ".join(ATTRIBUTES) + " |",
      "|---" * (len(ATTRIBUTES) + 6) + "|",
      f"| {report['step']} | {report['clips']} | {report['psnr']:.1f} | "
      f"{report['psnr_image']:.1f} | {report['compression']:.0f}x | {report['preserved']:.3f} | "
      + " | ".join(f"{s[f]:.2f}" if s.get(f) is not None else "-" for f in ATTRIBUTES) + " |"])


def write_report(report: dict, workdir) -> str:
  out = os.path.join(workdir, "eval")
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "vae_report.json"), "w", encoding="utf-8") as f:
    json.dump(report, f, indent=2, default=float)
  return markdown(report)
