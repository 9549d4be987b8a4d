"""The VAE trains with the DiT's machinery, and a DiT trains and samples in its latent space."""

import jax
import numpy as np
import pytest

from sora_jax.models import latents
from sora_jax.sample import pipeline
from sora_jax.train import loop, restore
from tests.train.conftest import latent_dit, vae_config


def test_vae_training_lowers_the_loss_and_stores_latent_stats(vae_workdir):
  from sora_jax.train import metrics
  rows = metrics.read_metrics(str(vae_workdir))
  assert rows[-1]["loss"] < 0.7 * rows[0]["loss"], rows
  assert rows[-1]["psnr"] > rows[0]["psnr"]
  stats = latents.load_stats(str(vae_workdir), 30)
  assert len(stats["shift"]) == len(stats["scale"]) == 4
  assert all(s > 0 for s in stats["scale"])


def test_vae_checkpoint_restores_the_trained_weights(vae_workdir, data_dir):
  from tests.conftest import tiny_config
  trained = restore.load_trained(str(vae_workdir), task="vae")
  assert trained.step == 30 and trained.config.task == "vae"
  config = vae_config(tiny_config(data_dir))
  config.train.steps = 40  # resume: the restored state is the trained one, not a fresh init
  run = loop.setup(config, str(vae_workdir))
  for a, b in zip(jax.tree.leaves(run.state.ema_params), jax.tree.leaves(trained.params)):
    np.testing.assert_array_equal(a, b)
  run.ckpt.close()


def test_latent_dit_trains_and_samples_decoded_videos(vae_workdir, config, tmp_path):
  config = latent_dit(config, vae_workdir)
  config.train.steps = 4
  loop.train(config, str(tmp_path / "dit"), progress=False)
  gen = pipeline.load(str(tmp_path / "dit"))
  assert gen.latent is not None and gen.latent.shape(4, 16, 16) == (2, 4, 4, 4)
  prompts = ["a red circle moves left", "a blue square"]
  videos = pipeline.generate(gen, prompts, steps=2)
  assert videos.shape == (2, 4, 16, 16, 3) and videos.dtype == np.uint8
  # best of 3, each draw decoded and encoded again to be scored: one video a prompt, repeatable
  best = pipeline.generate(gen, prompts, steps=2, candidates=3)
  assert best.shape == videos.shape and not np.array_equal(best, videos)
  np.testing.assert_array_equal(pipeline.generate(gen, prompts, steps=2, candidates=3), best)
  # scored against the prompts' other shapes instead: another pick, from the same draws
  margin = pipeline.generate(gen, ["a red circle moves left", "a blue square"], steps=2,
                             candidates=3, rerank_score="shape_margin")
  assert margin.shape == videos.shape
  with pytest.raises(ValueError, match="naming one shape"):
    pipeline.generate(gen, ["a red thing"], steps=2, candidates=3, rerank_score="shape_margin")


def test_latent_dit_rejects_a_mismatched_vae(vae_workdir, config, tmp_path):
  config.model.vae_workdir = str(vae_workdir)
  config.model.patch = (1, 2, 2)
  with pytest.raises(ValueError, match="latent channels"):  # channels left at 3
    loop.setup(config, str(tmp_path / "a"))
  config.model.channels, config.model.vae_workdir = 4, str(tmp_path)
  with pytest.raises(ValueError, match="no checkpoint"):
    loop.setup(config, str(tmp_path / "b"))
  with pytest.raises(ValueError, match="holds a 'vae' run, not a 'dit' one"):
    pipeline.load(str(vae_workdir))  # a VAE workdir is no DiT to sample from


def test_vae_eval_reports_psnr_compression_and_kept_attributes(vae_workdir):
  from sora_jax.eval import reconstruction
  trained = restore.load_trained(str(vae_workdir), task="vae")
  report = reconstruction.evaluate(trained, trained.config.data, limit=4)
  assert report["clips"] == 4 and np.isfinite(report["psnr"]) and np.isfinite(report["psnr_image"])
  assert report["compression"] == pytest.approx(4 * 16 * 16 * 3 / (2 * 4 * 4 * 4))
  assert 0.0 <= report["preserved"] <= 1.0
  assert "| 30 | 4 |" in reconstruction.markdown(report)


def test_preserved_counts_only_what_the_judge_gets_right_on_the_original():
  from sora_jax.eval import reconstruction
  right = dict(presence=True, colour=True, shape=True, size=True, direction=True)
  truth = [[right], [dict(right, shape=False)]]  # the judge misses clip 1's shape anyway
  assert reconstruction.preserved(truth, [[right], [dict(right, shape=False)]]) == 1.0
  assert reconstruction.preserved(truth, [[dict(right, colour=False)], [right]]) == 0.5


def test_latent_cache_equals_on_the_fly_encoding_and_trains(vae_workdir, config, tmp_path):
  import copy
  import json
  from sora_jax.data import latent_cache, pipeline as data_pipeline
  config = latent_dit(config, vae_workdir)
  config.data.latent_cache = str(tmp_path / "cache")
  with pytest.raises(ValueError, match="no finished cache"):
    loop.setup(config, str(tmp_path / "early"))
  meta = latent_cache.write(config, batch_size=8)
  assert meta["count"] == config.data.num_train and meta["latent_shape"] == [2, 4, 4, 4]
  # Record i is clip i: the same seed gives the same batches, as latents instead of pixels.
  pixels_cfg = copy.deepcopy(config.data)
  pixels_cfg.latent_cache = ""
  cached = next(iter(data_pipeline.train_dataset(config.data, batch_size=4, seed=3)))
  pixels = next(iter(data_pipeline.train_dataset(pixels_cfg, batch_size=4, seed=3)))
  assert set(cached) == {"latent", "text"}
  space, frozen = latents.load(str(vae_workdir))
  np.testing.assert_allclose(cached["latent"], space.encode(frozen, pixels["video"]), atol=1e-5)
  np.testing.assert_array_equal(cached["text"], pixels["text"])
  config.train.steps = 2
  state = loop.train(config, str(tmp_path / "dit"), progress=False)
  assert int(state.step) == 2
  meta_path = tmp_path / "cache" / latent_cache.META
  json.dump(dict(meta, vae_step=meta["vae_step"] - 1), open(meta_path, "w"))
  with pytest.raises(ValueError, match="made for other inputs"):
    loop.setup(config, str(tmp_path / "stale"))


def test_export_reads_like_its_workdir_and_overwrites_nothing(vae_workdir, tmp_path):
  out = str(tmp_path / "export")
  meta = restore.export(str(vae_workdir), out)
  assert meta == {"task": "vae", "step": 30, "source": str(vae_workdir)}
  assert restore.task_of(out) == "vae" and restore.describe(out, task="vae").params is None
  run, exported = (restore.load_trained(d, task="vae") for d in (str(vae_workdir), out))
  assert exported.config.to_dict() == run.config.to_dict() and exported.step == run.step
  for a, b in zip(jax.tree.leaves(run.params), jax.tree.leaves(exported.params), strict=True):
    np.testing.assert_array_equal(a, b)
  video = jax.random.uniform(jax.random.key(0), (1, 5, 16, 16, 3), minval=-1, maxval=1)
  (space_a, frozen_a), (space_b, frozen_b) = latents.load(str(vae_workdir)), latents.load(out)
  np.testing.assert_array_equal(space_a.encode(frozen_a, video), space_b.encode(frozen_b, video))
  with pytest.raises(ValueError, match="exists"):
    restore.export(str(vae_workdir), out)
  with pytest.raises(ValueError, match="only the EMA parameters of step 30"):
    restore.load_trained(out, task="vae", use_ema=False)
  with pytest.raises(ValueError, match="exported 'vae' model, not a 'dit' one"):
    pipeline.load(out)
