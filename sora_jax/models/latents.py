"""The latent space of a trained VAE, as the DiT sees it: pixels <-> normalised latents.

The DiT denoises latents scaled to unit variance per channel (shift and scale measured on the
training data when the VAE finished training, stored next to its checkpoints), so the diffusion
schedules mean the same in latent space as in pixel space.
"""

import dataclasses
import json
import os

import jax.numpy as jnp
import numpy as np
from flax import nnx

from sora_jax.models import vae as vae_lib

STATS_FILE = "latent_stats.json"


@dataclasses.dataclass(frozen=True)
class LatentSpace:
  """Static description of a VAE's latent space; its arrays travel separately as `frozen`:
  {"params": VAE parameters, "shift": [Cz], "scale": [Cz]} (jit arguments, not constants)."""
  graphdef: nnx.GraphDef
  factors: tuple  # (ft, fh, fw)
  channels: int
  step: int  # the VAE checkpoint these latents belong to (a latent cache records it)

  def shape(self, frames: int, height: int, width: int) -> tuple:
    """Latent (T', h, w, Cz) of a clip; frames are padded up to 1 + k * ft first."""
    ft, fh, fw = self.factors
    if height % fh or width % fw:
      raise ValueError(f"frame size {height}x{width} must be divisible by the VAE's spatial "
                       f"factors {fh}x{fw}")
    return (vae_lib.latent_frames(frames, ft), height // fh, width // fw, self.channels)

  def encode(self, frozen, video):
    """Pixels [B, T, H, W, C] in [-1, 1] -> normalised latent means [B, T', h, w, Cz]."""
    video, _ = vae_lib.pad_frames(video, self.factors[0])
    mean, _ = nnx.merge(self.graphdef, frozen["params"]).encode(video)
    return (mean - frozen["shift"]) / frozen["scale"]

  def decode(self, frozen, z, frames: int):
    """Normalised latents -> pixels [B, frames, H, W, C] (frames added by padding dropped)."""
    video = nnx.merge(self.graphdef, frozen["params"]).decode(z * frozen["scale"] + frozen["shift"])
    return video[:, :frames]


def channel_stats(means) -> dict:
  """Per-channel shift and scale of latent means [N, T', h, w, Cz]."""
  flat = np.asarray(means, np.float64).reshape(-1, means.shape[-1])
  return {"shift": flat.mean(0).tolist(), "scale": np.maximum(flat.std(0), 1e-6).tolist()}


def save_stats(workdir, step: int, stats: dict) -> None:
  """Writes DIR/latent_stats.json atomically, tagged with the checkpoint step it belongs to."""
  path = os.path.join(workdir, STATS_FILE)
  with open(path + ".tmp", "w", encoding="utf-8") as f:
    json.dump({"step": int(step), "shift": stats["shift"], "scale": stats["scale"]}, f, indent=2)
  os.replace(path + ".tmp", path)


def load_stats(workdir, step: int) -> dict:
  """The stats `save_stats` wrote, checked to belong to checkpoint `step`."""
  path = os.path.join(workdir, STATS_FILE)
  try:
    with open(path, encoding="utf-8") as f:
      stats = json.load(f)
  except FileNotFoundError:
    raise ValueError(f"{workdir}: no {STATS_FILE}; finish `sora-jax train-vae` there "
                     "first") from None
  if stats["step"] != step:
    raise ValueError(f"{path} is for step {stats['step']} but the latest VAE checkpoint is step "
                     f"{step}; finish `sora-jax train-vae` there first")
  return stats


def describe(vae_workdir) -> LatentSpace:
  """The LatentSpace of the latest VAE checkpoint in `vae_workdir`, reading no weights (enough
  to train from a latent cache, where the VAE stays on disk)."""
  from sora_jax.train import restore  # the train package builds models; import it lazily
  return _space(restore.describe(vae_workdir, task="vae"))


def load(vae_workdir) -> tuple[LatentSpace, dict]:
  """(LatentSpace, frozen arrays) of the trained VAE in `vae_workdir`."""
  from sora_jax.train import restore  # noqa: PLC0415
  trained = restore.load_trained(vae_workdir, task="vae")
  frozen = {"params": trained.params, **stats_arrays(load_stats(vae_workdir, trained.step))}
  return _space(trained), frozen


def stats_arrays(stats: dict) -> dict:
  """{"shift", "scale"} of stored stats as float32 arrays [Cz], as the models read them."""
  return {k: jnp.asarray(stats[k], jnp.float32) for k in ("shift", "scale")}


def stats_of(vae_workdir) -> dict:
  """The stored latent stats of the latest VAE checkpoint (or export) in `vae_workdir`."""
  return load_stats(vae_workdir, describe(vae_workdir).step)


def _space(trained) -> LatentSpace:
  v = trained.config.vae
  return LatentSpace(trained.graphdef, tuple(v.factors), int(v.latent_channels), trained.step)
