"""The CLI's promise: bad input gives one clear line, exit code 2, no traceback, nothing written."""

import os
import subprocess
import sys

import numpy as np
import pytest

from sora_jax import cli
from sora_jax.train import loop
from tests.conftest import ROOT

TINY = os.path.join(ROOT, "configs", "tiny_pixels.py")  # pixels: no VAE to load


def run_cli(*args):
  """The real console entry point in a subprocess: what a user sees."""
  proc = subprocess.run([sys.executable, "-m", "sora_jax.cli", *args], capture_output=True,
                        text=True, cwd=ROOT, timeout=300)
  return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("args,message", [
    (["--config.model.nope=3"], "unknown key; known at this level"),
    (["--config.nope.depth=3"], "unknown key 'nope'"),
    (["--config.train.steps=ten"], "--config.train.steps=ten: expected a int"),
    (["--config.model.patch=(2,4)"], "expected 3 values"),
    (["--config.data.height=36"], "height=36 is not a positive multiple of the patch size 8"),
    (["--config.train.fit_minutes=-5"], "train.fit_minutes=-5.0; must be >= 0"),
])
def test_train_rejects_bad_config(args, message, tmp_path):
  code, _, err = run_cli("train", f"--config={TINY}", f"--workdir={tmp_path / 'w'}", *args)
  assert code == 2
  assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
  assert not (tmp_path / "w").exists()


def test_train_commands_reject_the_other_task(tmp_path):
  vae = os.path.join(ROOT, "configs", "vae_tiny.py")
  code, _, err = run_cli("train", f"--config={vae}", f"--workdir={tmp_path / 'w'}")
  assert code == 2 and "run `sora-jax train-vae`" in err and not (tmp_path / "w").exists()
  code, _, err = run_cli("train-vae", f"--config={TINY}", f"--workdir={tmp_path / 'w'}")
  assert code == 2 and "run `sora-jax train`" in err and not (tmp_path / "w").exists()
  code, _, err = run_cli("train", f"--config={TINY}", f"--workdir={tmp_path / 'w'}",
                         "--config.task=gan")
  assert code == 2 and "task='gan'; allowed: dit, vae" in err


def test_train_rejects_missing_config_file(tmp_path):
  code, _, err = run_cli("train", "--config=configs/nope.py", f"--workdir={tmp_path}")
  assert code == 2 and "not a .py config file" in err


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
  from tests.conftest import tiny_config
  workdir = tmp_path_factory.mktemp("trained")
  config = tiny_config(data_dir)
  config.train.steps = 2
  loop.train(config, str(workdir), progress=False)
  return workdir


def sample(workdir, *args):
  return run_cli("sample", f"--workdir={workdir}", "--steps=2", *args)


@pytest.mark.parametrize("prompt,message", [
    ("", "empty"), ("   ", "empty"), ("caf\udce9", "not valid UTF-8")])
def test_sample_rejects_bad_prompts(trained, tmp_path, prompt, message):
  out = tmp_path / "x.mp4"
  code, _, err = sample(trained, "--prompt", prompt, "--out", str(out))
  assert code == 2 and message in err and "Traceback" not in err
  assert not out.exists()


def test_sample_rejects_non_utf8_prompts_file(trained, tmp_path):
  prompts = tmp_path / "p.txt"
  prompts.write_bytes(b"a red circle\n\xff\xfe moves\n")
  code, _, err = sample(trained, "--prompts", str(prompts), "--out", str(tmp_path / "o"))
  assert code == 2 and "not UTF-8" in err
  assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("out,message", [
    ("clip.avi", "allowed"), ("missing_dir/clip.mp4", "")])
def test_sample_rejects_bad_outputs(trained, tmp_path, out, message):
  code, _, err = sample(trained, "--prompt", "a red circle moves left", "--out",
                        str(tmp_path / out))
  assert code == 2 and message in err and "Traceback" not in err
  assert len(err.strip().splitlines()) == 1


def test_sample_never_overwrites_on_bad_input(trained, tmp_path):
  out = tmp_path / "keep.mp4"
  out.write_bytes(b"precious")
  code, _, _ = sample(trained, "--prompt", "", "--out", str(out))
  assert code == 2 and out.read_bytes() == b"precious"


def test_sample_and_eval_need_a_checkpoint(tmp_path):
  code, _, err = sample(tmp_path, "--prompt", "a red circle", "--out", str(tmp_path / "a.mp4"))
  assert code == 2 and "no checkpoint" in err
  code, _, err = sample(tmp_path, "--prompt", "a", "--prompt", "b", "--out", str(tmp_path / "o"))
  assert code == 2 and "no checkpoint" in err and not (tmp_path / "o").exists()
  code, _, err = run_cli("eval", f"--workdir={tmp_path}")
  assert code == 2 and "no checkpoint" in err


def test_export_needs_a_checkpoint_and_a_new_folder(trained, tmp_path):
  code, _, err = run_cli("export", f"--workdir={tmp_path}", f"--out={tmp_path / 'x'}")
  assert code == 2 and "no checkpoint" in err and not (tmp_path / "x").exists()
  (tmp_path / "taken").mkdir()
  code, _, err = run_cli("export", f"--workdir={trained}", f"--out={tmp_path / 'taken'}")
  assert code == 2 and "exists; give a new folder" in err and "Traceback" not in err
  assert list((tmp_path / "taken").iterdir()) == []


def test_sample_rejects_frame_sizes_not_divisible_by_the_patch(trained, tmp_path):
  code, _, err = sample(trained, "--prompt", "a red circle", "--out", str(tmp_path / "a.npy"),
                        "--height", "12")
  assert code == 2 and "height=12" in err


@pytest.mark.parametrize("flag,message", [("--eta=-1", "eta=-1"), ("--stagger=-1", "stagger=-1"),
                                          ("--shift=0", "shift=0"), ("--eps_scale=0", "eps_scale=0"),
                                          ("--attribute_guidance=-1", "attribute_guidance=-1"),
                                          ("--candidates=0", "candidates=0"),
                                          ("--rerank_score=clip", "rerank_score='clip'"),
                                          ("--first_frame_pass", "needs a model trained with"),
                                          ("--draft_image", "turn that on too"),
                                          ("--attribute_guidance=1 --guided_attributes=size",
                                           "among ('colour', 'shape')")])
def test_sample_rejects_bad_sampler_settings(trained, tmp_path, flag, message):
  out = tmp_path / "a.npy"
  code, _, err = sample(trained, "--prompt", "a red circle", "--out", str(out), *flag.split())
  assert code == 2 and message in err and "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("switch", ["first_frame_pass", "draft_image", "rerank_draft"])
@pytest.mark.parametrize("command", ["sample", "eval"])
def test_sampler_switches_turn_the_configs_setting_on_or_off(command, switch):
  args = ["--workdir=w"] + (["--prompt=a", "--out=o.npy"] if command == "sample" else [])
  parse = lambda *flag: getattr(cli._parser().parse_args([command, *args, *flag]), switch)
  assert (parse(), parse(f"--{switch}"), parse(f"--no-{switch}")) == (None, True, False)


def test_sample_shift_overrides_the_training_shift(trained, tmp_path):
  """--shift at the run's own shift changes nothing; another shift samples other noise levels."""
  from sora_jax.sample import pipeline
  shift = pipeline.load(trained).config.diffusion.shift
  args = ["sample", f"--workdir={trained}", "--steps=3", "--prompt", "a blue square"]
  for name, flags in [("own", []), ("same", ["--shift", str(shift)]),
                      ("other", ["--shift", str(3 * shift)])]:
    assert cli.main(args + flags + ["--out", str(tmp_path / f"{name}.npy")]) == 0
  own = np.load(tmp_path / "own.npy")
  np.testing.assert_array_equal(np.load(tmp_path / "same.npy"), own)
  assert not np.array_equal(np.load(tmp_path / "other.npy"), own)


def test_best_of_candidates_draws_other_videos_the_same_way_each_time(trained, tmp_path):
  """--candidates 1 is the plain sampler; 3 keeps one video a prompt, again the same for the same
  seed (diffusion/rerank.py tests which one)."""
  def draw(*flags):
    out = tmp_path / f"{len(list(tmp_path.iterdir()))}"
    assert cli.main(["sample", f"--workdir={trained}", "--steps=2", "--prompt", "a blue square",
                     "--prompt", "a red circle moves up", "--out", str(out), "--format", "npy",
                     *flags]) == 0
    return np.stack([np.load(out / f"{i:03d}.npy") for i in range(2)])
  plain, best = draw(), draw("--candidates", "3")
  np.testing.assert_array_equal(draw("--candidates", "1"), plain)
  assert best.shape == plain.shape and not np.array_equal(best, plain)
  np.testing.assert_array_equal(draw("--candidates", "3"), best)


def test_attribute_guidance_pushes_away_from_the_prompt_without_its_shape_word(trained,
                                                                               tmp_path):
  """A prompt naming no shape is its own negative: the added term is zero and nothing changes;
  one naming a shape samples other videos."""
  def draw(prompt, *flags):
    out = tmp_path / f"{len(list(tmp_path.iterdir()))}.npy"
    assert cli.main(["sample", f"--workdir={trained}", "--steps=3", "--prompt", prompt,
                     "--out", str(out), *flags]) == 0
    return np.load(out)
  for prompt, changes in [("a blue thing moves up", False), ("a blue square moves up", True)]:
    plain, guided = draw(prompt), draw(prompt, "--attribute_guidance", "3")
    assert np.array_equal(plain, draw(prompt, "--attribute_guidance", "0"))
    assert np.array_equal(plain, guided) != changes, prompt
  # with the colour dropped from both prompts too: the shape word still makes the difference
  without_colour = ("--attribute_guidance", "3", "--contrast_without", "colour")
  for prompt, changes in [("a blue thing moves up", False), ("a blue square moves up", True)]:
    assert np.array_equal(draw(prompt), draw(prompt, *without_colour)) != changes, prompt


def test_autoguidance_pushes_away_from_a_worse_model(trained, tmp_path, data_dir):
  """Guided by its own checkpoint the difference is zero and nothing changes; guided by another
  run (one step of training) it samples other videos."""
  from tests.conftest import tiny_config
  def draw(*flags):
    out = tmp_path / f"{len(list(tmp_path.iterdir()))}.npy"
    assert cli.main(["sample", f"--workdir={trained}", "--steps=3", "--prompt", "a blue square",
                     "--out", str(out), *flags]) == 0
    return np.load(out)
  plain = draw()
  np.testing.assert_array_equal(draw("--autoguidance", "2", "--guide_step", "2"), plain)
  worse = tmp_path / "worse"
  config = tiny_config(data_dir)
  config.train.steps = 1
  loop.train(config, str(worse), progress=False)
  guided = draw("--autoguidance", "2", "--guide_workdir", str(worse))
  assert not np.array_equal(guided, plain)
  np.testing.assert_array_equal(draw("--autoguidance", "0", "--guide_workdir", str(worse)), plain)


@pytest.mark.parametrize("flags,message", [
    ("--autoguidance=1", "needs a worse model to guide with"),
    ("--autoguidance=-1 --guide_step=2", "autoguidance=-1"),
    ("--autoguidance=1 --guide_step=7", "no checkpoint of step 7")])
def test_sample_rejects_bad_autoguidance(trained, tmp_path, flags, message):
  out = tmp_path / "a.npy"
  code, _, err = sample(trained, "--prompt", "a red circle", "--out", str(out), *flags.split())
  assert code == 2 and message in err and "Traceback" not in err and not out.exists()


def test_a_guide_must_denoise_what_the_model_denoises(trained):
  from sora_jax.sample import pipeline
  gen = pipeline.load(trained)
  assert pipeline.load_guide(gen, trained, 2).step == 2
  gen.config = gen.config.copy_and_resolve_references()
  gen.config.data.height *= 2
  with pytest.raises(ValueError, match="denoises other inputs"):
    pipeline.load_guide(gen, trained, None)


def test_sample_edits_a_video_at_the_given_strength(trained, tmp_path):
  clip = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
  np.save(tmp_path / "in.npy", clip)
  edit = ["sample", f"--workdir={trained}", "--steps=4", "--prompt", "a blue square",
          "--edit", str(tmp_path / "in.npy")]
  assert cli.main(edit + ["--strength", "0", "--out", str(tmp_path / "keep.npy")]) == 0
  np.testing.assert_array_equal(np.load(tmp_path / "keep.npy"), clip)
  assert cli.main(edit + ["--strength", "0.5", "--out", str(tmp_path / "half.npy")]) == 0
  half = np.load(tmp_path / "half.npy")
  assert half.shape == clip.shape and not np.array_equal(half, clip)


def test_expand_prompts_hands_the_model_the_detailed_register(trained, tmp_path, monkeypatch):
  from sora_jax.data import captions
  from sora_jax.sample import pipeline
  read = []  # what the model's text encoder is given
  encode = pipeline.tokenizer.encode_batch
  monkeypatch.setattr(pipeline.tokenizer, "encode_batch",
                      lambda texts, length: read.append(list(texts)) or encode(texts, length))
  prompt = "a small red circle moves left"
  out = str(tmp_path / "o.npy")
  assert cli.main(["sample", f"--workdir={trained}", "--steps=2", "--prompt", prompt,
                   "--out", out, "--expand_prompts"]) == 0
  assert read == [[captions.expand_prompt(prompt)]]
  assert captions.parse_prompt(read[0][0])[0]["colour"] == "red"
  gen = pipeline.load(str(trained))
  pipeline.generate(gen, [prompt], steps=2)  # the config's default: as given
  gen.config.sample.expand_prompts = True
  pipeline.generate(gen, [prompt], steps=2)
  pipeline.generate(gen, [prompt], steps=2, expand_prompts=False)
  assert read[1:] == [[prompt], [captions.expand_prompt(prompt)], [prompt]]


def test_edit_skips_the_first_frame_pass_the_config_asks_for(trained):
  from sora_jax.sample import pipeline
  gen = pipeline.load(str(trained))
  gen.config.sample.first_frame_pass = True  # this model has no known frames: it would raise
  clip = np.random.default_rng(1).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
  out = pipeline.generate(gen, ["a red circle"], steps=2, edit=clip, strength=0.0)
  np.testing.assert_array_equal(out[0], clip)


@pytest.mark.parametrize("flags,message", [
    (["--strength", "0.5"], "give the clip with --edit"),
    (["--edit", "missing.npy"], "no such video file"),
    (["--edit", "{clip}", "--strength", "1.5"], "strength=1.5; must be in [0, 1]"),
    (["--edit", "{clip}", "--stagger", "1"], "needs stagger = 0"),
    (["--edit", "{clip}", "--first_frame_pass"], "do not combine"),
    (["--edit", "{clip}", "--draft_image"], "do not combine")])
def test_sample_rejects_bad_edits(trained, tmp_path, flags, message):
  np.save(tmp_path / "in.npy", np.zeros((4, 16, 16, 3), np.uint8))
  flags = [f.format(clip=tmp_path / "in.npy") for f in flags]
  out = tmp_path / "a.npy"
  code, _, err = sample(trained, "--prompt", "a red circle", "--out", str(out), *flags)
  assert code == 2 and message in err and "Traceback" not in err and not out.exists()


def test_sample_batch_writes_every_format_in_prompt_order(trained, tmp_path):
  out = tmp_path / "batch"
  assert cli.main(["sample", f"--workdir={trained}", "--steps=2", "--prompt", "a red circle",
                   "--prompt", "a blue square", "--out", str(out), "--format", "npy"]) == 0
  videos = [np.load(out / f"{i:03d}.npy") for i in range(2)]
  assert all(v.shape == (4, 16, 16, 3) and v.dtype == np.uint8 for v in videos)
  assert (out / "sheet.png").exists()
  for ext in ("mp4", "gif", "png"):
    assert cli.main(["sample", f"--workdir={trained}", "--steps=2", "--prompt", "a red circle",
                     "--out", str(tmp_path / f"one.{ext}")]) == 0
    assert (tmp_path / f"one.{ext}").stat().st_size > 0


def test_encode_latents_needs_a_cache_folder_and_a_vae(tmp_path):
  code, _, err = run_cli("encode-latents", f"--config={TINY}")
  assert code == 2 and "needs --config.data.latent_cache=DIR" in err
  code, _, err = run_cli("encode-latents", f"--config={TINY}",
                         f"--config.data.latent_cache={tmp_path / 'c'}",
                         f"--config.model.vae_workdir={tmp_path / 'none'}")
  assert code == 2 and "no checkpoints" in err and not (tmp_path / "c").exists()
