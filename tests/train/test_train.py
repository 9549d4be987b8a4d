import dataclasses
import time

import jax
import numpy as np
import pytest
from flax import nnx

from sora_jax.diffusion import schedules
from sora_jax.train import loop, metrics, step as step_lib


def fixed_loss(run, params, batch):
  """Mean diffusion loss over a few fixed noise draws: comparable across parameter sets."""
  cfg = step_lib.StepConfig.from_config(run.config)
  losses = [step_lib.diffusion_loss(params, run.graphdef, batch, jax.random.key(k), {},
                                    cfg)[1]["mse"] for k in range(4)]
  return float(np.mean(losses))


@pytest.mark.parametrize("model,optimizer,lag", [
    ({}, "adamw", 0), ({"self_condition": True}, "adamw", 0),
    ({"self_condition": True, "route_blocks": (0, 1)}, "adamw", 1), ({}, "muon", 0)],
    ids=["plain", "self_cond", "self_cond_routed_lag", "muon"])
def test_training_lowers_the_loss_and_compiles_once(config, tmp_path, model, optimizer, lag):
  """Also with self-conditioning, whose first pass sits under a lax.cond in the one compile, with
  token routing (a fresh draw of routed tokens each step, still one compile) and the estimate
  from a step earlier in the chain, and with Muon."""
  config.train.steps, config.train.lr = 40, 3e-3
  config.train.optimizer = optimizer
  config.model.update(model)
  config.diffusion.self_condition_lag = lag
  run = loop.setup(config, str(tmp_path / "run"))
  batch = loop.global_batch(run, next(run.data))
  before = fixed_loss(run, run.state.params, batch)
  key = jax.random.key(0)
  for _ in range(config.train.steps):
    run.state, _ = run.step_fn(run.state, loop.global_batch(run, next(run.data)), key, run.frozen)
  after = fixed_loss(run, run.state.params, batch)
  assert after < 0.8 * before, (before, after)
  assert run.step_fn._cache_size() == 1  # traced and compiled once for all steps
  run.ckpt.close()


@pytest.fixture(scope="module")
def straight(tmp_path_factory, data_dir):
  """(workdir, final state) of one uninterrupted run of the tiny config (6 steps, checkpoints at
  3 and 6), shared by the tests that only read it."""
  from tests.conftest import tiny_config
  workdir = tmp_path_factory.mktemp("straight")
  return workdir, loop.train(tiny_config(data_dir), str(workdir), progress=False)


def test_resume_is_bit_identical_to_an_uninterrupted_run(config, tmp_path, straight):
  uninterrupted = straight[1]
  loop.train(config, str(tmp_path / "b"), stop_at=3, progress=False)  # "preempted" at step 3
  resumed = loop.train(config, str(tmp_path / "b"), progress=False)
  assert int(resumed.step) == int(uninterrupted.step) == config.train.steps
  for a, b in zip(jax.tree.leaves(uninterrupted), jax.tree.leaves(resumed)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_time_limit_stops_like_a_preemption_and_the_run_resumes(config, tmp_path, straight):
  """Past train.time_limit_minutes the run logs and checkpoints the step it is at and stops;
  called again without the limit it finishes exactly as the uninterrupted run."""
  workdir = tmp_path / "limited"
  config.train.time_limit_minutes = 1e-9  # already past once set up: one step, then stop
  assert int(loop.train(config, str(workdir), progress=False).step) == 1
  assert [r["step"] for r in metrics.read_metrics(str(workdir))] == [1]
  assert [p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()] == ["1"]
  config.train.time_limit_minutes = 0.0
  resumed = loop.train(config, str(workdir), progress=False)
  for a, b in zip(jax.tree.leaves(straight[1]), jax.tree.leaves(resumed)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("minutes", [-1.0, float("nan"), "10"])
def test_time_limit_is_checked(minutes):
  with pytest.raises(ValueError, match="time_limit_minutes"):
    loop.time_limit_deadline(minutes)
  assert loop.time_limit_deadline(0.0) is None


def test_processes_agree_on_the_time_limit_at_logged_steps_only(monkeypatch):
  """On several processes the stop is process 0's decision, broadcast at logged steps (a
  collective every process reaches), so no process stops a step before the others."""
  asked = []
  monkeypatch.setattr(loop.jax, "process_count", lambda: 2)
  monkeypatch.setattr(loop.multihost_utils, "broadcast_one_to_all",
                      lambda x: asked.append(bool(x)) or x)
  past = time.monotonic() - 1.0  # a deadline already gone
  assert not loop.out_of_time(past, done=7, log_every=5)  # not a logged step: no collective
  assert loop.out_of_time(past, done=10, log_every=5)
  assert not loop.out_of_time(None, done=10, log_every=5)
  assert asked == [True]


def test_run_writes_metrics_config_and_checkpoints(straight):
  workdir = straight[0]
  rows = metrics.read_metrics(str(workdir))
  assert [r["step"] for r in rows] == [2, 4, 6]
  for key in ("loss", "grad_norm", "lr", "steps_per_sec"):
    assert all(np.isfinite(r[key]) for r in rows), key
  assert (workdir / "config.json").exists()
  assert any((workdir / "tensorboard").iterdir())
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == [
      "3", "6"]


def test_frame_times_shared_or_independent_per_frame_group():
  shared = np.asarray(step_lib.frame_times(jax.random.key(0), 64, 8, 2, 0.0))
  assert shared.shape == (64, 8) and (shared == shared[:, :1]).all()
  own = np.asarray(step_lib.frame_times(jax.random.key(0), 64, 8, 2, 1.0))
  np.testing.assert_array_equal(own[:, 0::2], own[:, 1::2])  # a group shares its level
  assert (own[:, 0] != own[:, 2]).all()  # groups draw their own
  assert own.min() > 0 and own.max() <= 1
  mixed = np.asarray(step_lib.frame_times(jax.random.key(0), 256, 8, 2, 0.5))
  share = np.mean((mixed != mixed[:, :1]).any(axis=1))
  assert 0.35 < share < 0.65, share


def test_mixed_shift_times_draw_a_share_of_clips_at_the_second_shift_in_the_models_time():
  t = step_lib.frame_times(jax.random.key(1), 512, 4, 1, 0.0)
  every = step_lib.mixed_shift_times(jax.random.key(2), t, 1.0, 1.0 / 4.0)
  # under the schedule's shift 4, the re-drawn times give the noise levels of shift 1
  for got, want in zip(schedules.alpha_sigma("cosine", every, 4.0),
                       schedules.alpha_sigma("cosine", t, 1.0)):
    np.testing.assert_allclose(got, want, atol=1e-5)
  half = np.asarray(step_lib.mixed_shift_times(jax.random.key(2), t, 0.5, 0.25))
  moved = (half != np.asarray(t)).any(axis=1)
  assert 0.4 < moved.mean() < 0.6, moved.mean()
  assert (half == half[:, :1]).all()  # a clip's frames keep one level
  np.testing.assert_array_equal(step_lib.mixed_shift_times(jax.random.key(2), t, 0.0, 0.25),
                                t)


def test_second_shift_keys_are_checked(config):
  config.diffusion.second_shift_prob = 1.5
  with pytest.raises(ValueError, match="second_shift_prob=1.5"):
    step_lib.StepConfig.from_config(config)
  config.diffusion.second_shift_prob = 0.5
  config.diffusion.second_shift = 0.0
  with pytest.raises(ValueError, match="second_shift=0.0"):
    step_lib.StepConfig.from_config(config)


def test_self_condition_lag_is_checked(config):
  config.diffusion.self_condition_lag = 1
  with pytest.raises(ValueError, match="self_condition_lag=1 needs model.self_condition"):
    step_lib.StepConfig.from_config(config)
  config.model.self_condition = True
  config.diffusion.self_condition_lag = -1
  with pytest.raises(ValueError, match="self_condition_lag=-1; must be >= 0"):
    step_lib.StepConfig.from_config(config)
  config.diffusion.self_condition_lag = 2
  assert step_lib.StepConfig.from_config(config).self_condition_dt == 2 / config.sample.steps


def test_image_batch_adds_the_first_frames_as_images_and_leaves_the_clips_draws(config, tmp_path):
  config.model.patch = (1, 8, 8)
  config.model.self_condition = True  # its first pass must also take images
  config.train.image_batch = 3
  run = loop.setup(config, str(tmp_path / "run"))
  batch = loop.global_batch(run, next(run.data))
  cfg = step_lib.StepConfig.from_config(run.config)
  assert cfg.image_batch == 3
  key = jax.random.key(4)
  loss, _ = step_lib.diffusion_loss(run.state.params, run.graphdef, batch, key, {}, cfg)
  model = nnx.merge(run.graphdef, run.state.params)
  clips = step_lib.denoising_errors(model, batch["video"], batch["text"], key, cfg).weighted
  images = step_lib.denoising_errors(model, batch["video"][:3, :1], batch["text"][:3],
                                     jax.random.fold_in(key, 2), cfg, known_frames_prob=0.0).weighted
  assert images.shape == (3, 1)
  want = (clips.sum() + images.sum()) / (clips.size + images.size)  # every frame counts alike
  np.testing.assert_allclose(loss, want, rtol=1e-5)
  without = dataclasses.replace(cfg, image_batch=0)
  alone = step_lib.diffusion_loss(run.state.params, run.graphdef, batch, key, {}, without)[0]
  np.testing.assert_allclose(alone, clips.mean(), rtol=1e-5)  # the clips draw what they drew
  step_fn = run.step_fn
  for _ in range(2):
    run.state, m = step_fn(run.state, loop.global_batch(run, next(run.data)), key, run.frozen)
    assert np.isfinite(float(m["loss"]))
  assert step_fn._cache_size() == 1
  run.ckpt.close()


def test_image_batch_is_checked(config):
  config.train.image_batch = 2
  with pytest.raises(ValueError, match=r"needs model.patch\[0\] = 1"):
    step_lib.StepConfig.from_config(config)
  config.model.patch = (1, 8, 8)
  config.train.image_batch = config.train.batch_size + 1
  with pytest.raises(ValueError, match="train.image_batch=5; must be in"):
    step_lib.StepConfig.from_config(config)


def test_known_frames_training_runs_and_needs_the_model_flag(config, tmp_path):
  config.diffusion.known_frames_prob = 1.0
  with pytest.raises(ValueError, match="needs model.known_frames"):
    step_lib.StepConfig.from_config(config)
  config.model.known_frames = True
  config.train.steps = 2
  state = loop.train(config, str(tmp_path / "k"), progress=False)
  rows = metrics.read_metrics(str(tmp_path / "k"))
  assert int(state.step) == 2 and all(np.isfinite(r["loss"]) for r in rows)


def test_load_trained_restores_a_chosen_step(straight):
  from sora_jax.train import checkpoint, restore
  workdir, final = str(straight[0]), straight[1]  # checkpoints at steps 3 and 6
  latest = restore.load_trained(workdir, task="dit")
  early = restore.load_trained(workdir, task="dit", step=3)
  assert (latest.step, early.step) == (6, 3)
  for a, b in zip(jax.tree.leaves(latest.params), jax.tree.leaves(final.ema_params)):
    np.testing.assert_array_equal(a, b)
  assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(latest.params),
                                                       jax.tree.leaves(early.params)))
  with pytest.raises(checkpoint.NoCheckpointError, match=r"no checkpoint of step 4; it has \[3, 6\]"):
    restore.load_trained(workdir, task="dit", step=4)


def test_load_trained_reads_ema_or_raw_parameters_as_the_run_says(config, tmp_path):
  from sora_jax.train import restore
  config.train.steps, config.train.checkpoint_every = 2, 2
  config.sample.use_ema = False
  final = loop.train(config, str(tmp_path / "raw"), progress=False)
  leaves = jax.tree.leaves
  by_config = restore.load_trained(str(tmp_path / "raw"), task="dit")
  ema = restore.load_trained(str(tmp_path / "raw"), task="dit", use_ema=True)
  for a, b in zip(leaves(by_config.params), leaves(final.params)):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(leaves(ema.params), leaves(final.ema_params)):
    np.testing.assert_array_equal(a, b)
  assert any(not np.array_equal(a, b) for a, b in zip(leaves(final.params),
                                                       leaves(final.ema_params)))
