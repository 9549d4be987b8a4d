"""assets/vae_tiny, the trained VAE the repository ships for the demo's latent DiT."""

import json
import os

import jax
import numpy as np

from sora_jax.data import pipeline as pipeline_lib, shapes
from sora_jax.eval import judge, reconstruction
from sora_jax.sample import video_io
from sora_jax.train import restore

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ASSET = os.path.join(ROOT, "assets", "vae_tiny")
TUNED = os.path.join(ROOT, "assets", "vae_tiny_tuned")


def test_shipped_vae_is_the_vae_tiny_config_trained():
  from configs import vae_tiny
  trained = restore.describe(ASSET, task="vae")
  as_json = lambda cfg: json.loads(json.dumps(cfg.to_dict()))  # tuples read back as lists
  shipped, config = as_json(trained.config.vae), as_json(vae_tiny.get_config().vae)
  assert shipped == {k: config[k] for k in shipped}
  # keys added since the export (decoder tuning) are at their defaults: tuning off
  from sora_jax.train import latent_errors
  assert set(config) - set(shipped) == {"init_from", "train_parts", *latent_errors.NAMES}
  assert config["init_from"] == "" and config["train_parts"] == "all"
  assert not latent_errors.LatentErrors.from_config(vae_tiny.get_config().vae).active
  assert trained.step == vae_tiny.get_config().train.steps


def test_shipped_vae_reconstructs_held_out_clips_keeping_every_attribute():
  rng = np.random.default_rng(123)  # clips the VAE never saw: held-out colour-shape pairs
  clips = [shapes.make_clip(rng, frames=16, height=32, width=32, held_out=True)
           for _ in range(8)]
  videos = np.stack([video for video, _, _ in clips])
  trained = restore.load_trained(ASSET, task="vae")
  recon = reconstruction.reconstruct(trained, videos)
  assert reconstruction.psnr(videos, recon) > 30.0  # 32.3 dB on the 64 test clips (README)
  truth = [judge.judge_video(v, objs) for v, (_, objs, _) in zip(videos, clips)]
  judged = [judge.judge_video(r, objs) for r, (_, objs, _) in zip(recon, clips)]
  assert reconstruction.preserved(truth, judged) == 1.0


def test_tuned_vae_is_the_shipped_one_with_the_vae_tiny_tuned_decoder():
  from configs import vae_tiny_tuned
  from sora_jax.models import latents
  want = vae_tiny_tuned.get_config()
  tuned, shipped = restore.load_trained(TUNED, task="vae"), restore.load_trained(ASSET, task="vae")
  got, want_vae = (json.loads(json.dumps(c.vae.to_dict())) for c in (tuned.config, want))
  source = got.pop("init_from")  # an absolute path: where the repository was when it trained
  assert os.path.basename(source) == os.path.basename(want_vae.pop("init_from")) == "vae_tiny"
  assert got == want_vae and tuned.step == want.train.steps
  encoders = (jax.tree.leaves(t.params["encoder"]) for t in (tuned, shipped))
  for a, b in zip(*encoders, strict=True):
    np.testing.assert_array_equal(a, b)
  ours, theirs = latents.stats_of(TUNED), latents.stats_of(ASSET)
  assert (ours["shift"], ours["scale"]) == (theirs["shift"], theirs["scale"])


def test_tuned_decoder_draws_squares_from_blurred_latents_where_the_shipped_one_does_not():
  """Latents blurred at weight 0.6 (a DiT's average over where an edge might be): the shipped
  decoder rounds most squares (3 of 10 kept in experiments/latent_noise_probe.py), the tuned one
  keeps them, and both keep clean clips whole."""
  from sora_jax.models import latents
  from sora_jax.train import latent_errors
  rng = np.random.default_rng(5)
  clips = []
  while len(clips) < 8:
    clip = shapes.make_clip(rng, frames=16, height=32, width=32, held_out=True)
    if clip[1][0]["shape"] == "square":
      clips.append(clip)
  videos = pipeline_lib.to_unit_range(np.stack([video for video, _, _ in clips]))
  kept = {}
  for name, vae in (("shipped", ASSET), ("tuned", TUNED)):
    space, frozen = latents.load(vae)
    z = space.encode(frozen, videos)
    for blur in (0.0, 0.6):
      blurred = latent_errors.perturb(z, blur, 0.0, 0.0, 0.0)
      recon = video_io.to_uint8(np.asarray(space.decode(frozen, blurred, 16)))
      kept[name, blur] = sum(bool(judge.judge_video(r, objs)[0]["shape"])
                             for r, (_, objs, _) in zip(recon, clips))
  assert kept["shipped", 0.0] == kept["tuned", 0.0] == 8
  assert kept["tuned", 0.6] >= 7 and kept["shipped", 0.6] <= 4, kept


def test_demo_config_trains_and_samples_in_the_shipped_vaes_latents(config, tmp_path):
  """configs/tiny_cpu.py (the demo) finds the shipped VAE from any working directory; its model
  and data are shrunk here to the suite's tiny ones."""
  from configs import tiny_cpu
  from sora_jax.sample import pipeline
  from sora_jax.train import loop
  demo = tiny_cpu.get_config()
  assert demo.model.vae_workdir == ASSET and restore.is_export(ASSET)
  demo.data, demo.train, demo.sample = config.data, config.train, config.sample  # the tiny ones
  demo.data.latent_cache = ""  # encode on the fly
  demo.model.width, demo.model.depth, demo.model.head_hidden = 32, 1, 64
  demo.model.text_width, demo.model.text_word_buckets = 32, 64
  demo.train.steps = 2
  loop.train(demo, str(tmp_path / "demo"), progress=False)
  gen = pipeline.load(str(tmp_path / "demo"))
  assert gen.latent.shape(4, 16, 16) == (2, 4, 4, 16)  # 16 latent channels, frames 0 | 1-3
  videos = pipeline.generate(gen, ["a large red circle moves right"], steps=2)
  assert videos.shape == (1, 4, 16, 16, 3) and videos.dtype == np.uint8
