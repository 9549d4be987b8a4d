import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sora_jax.diffusion import noise as noise_lib, objectives, sampling, schedules

SHAPE = (2, 4, 8, 8, 3)


def oracle(x0, cfg):
  """A model that knows x0 exactly and answers in `cfg.prediction`'s terms."""
  def model_fn(x_t, t, text, *_):
    del text
    alpha, sigma = schedules.alpha_sigma(cfg.schedule, t, cfg.shift)
    eps = (x_t - objectives.expand(alpha, x_t) * x0) / jnp.maximum(
        objectives.expand(sigma, x_t), 1e-12)
    return objectives.target(cfg.prediction, x0, eps, alpha, sigma)
  return model_fn


@pytest.mark.parametrize("schedule,prediction,eta,stagger", list(itertools.product(
    schedules.SCHEDULES, objectives.PREDICTIONS, [0.0, 1.0], [0.0, 1.0])))
def test_ddim_with_exact_x0_oracle_returns_x0(schedule, prediction, eta, stagger):
  x0 = jax.random.uniform(jax.random.key(0), SHAPE, minval=-1, maxval=1)
  cfg = sampling.SamplerConfig(schedule=schedule, prediction=prediction, steps=8, eta=eta,
                               shift=2.0 if schedule == "rectified_flow" else 1.0,
                               stagger=stagger, time_group=2)
  text = jnp.zeros((2, 3), jnp.int32)
  out = jax.jit(lambda k: sampling.sample(oracle(x0, cfg), cfg, k, SHAPE, text, text))(
      jax.random.key(1))
  np.testing.assert_allclose(out, x0, atol=2e-4)


def reference_ddim(model, x, steps, eps_scale=1.0):
  """DDIM eta=0 for cosine VP as written in Song et al. (2021) with eps and v predictions; with
  eps_scale, the epsilon scaling of Ning et al. (2024): the noise term divided by it."""
  ts = np.linspace(1.0, 0.0, steps + 1)
  for t, s in zip(ts[:-1], ts[1:]):
    abar_t = max(np.cos(np.pi / 2 * t), 0.0) ** 2
    abar_s = np.cos(np.pi / 2 * s) ** 2
    v = model(x, t)
    x0 = np.sqrt(abar_t) * x - np.sqrt(1 - abar_t) * v
    eps = np.sqrt(abar_t) * v + np.sqrt(1 - abar_t) * x
    x = np.sqrt(abar_s) * x0 + np.sqrt(1 - abar_s) * eps / eps_scale
  return x


@pytest.mark.parametrize("eps_scale", [1.0, 1.2])
def test_ddim_eta0_matches_hand_written_reference(eps_scale):
  model = lambda x, t, xp: 0.5 * x * (1 - t) + 0.2 * xp.sin(x) + 0.1 * t
  cfg = sampling.SamplerConfig(schedule="cosine", prediction="v", steps=5, eps_scale=eps_scale)
  fn = lambda x, t, text, *_: model(x, t[:, :, None, None, None], jnp)
  text = jnp.zeros((2, 3), jnp.int32)
  out = sampling.sample(fn, cfg, jax.random.key(3), SHAPE, text, text)
  x_init = jax.random.normal(jax.random.split(jax.random.key(3))[0], SHAPE)
  ref = reference_ddim(lambda x, t: model(x, t, np), np.asarray(x_init, np.float64), 5, eps_scale)
  np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def _edit_setup(steps=6):
  cfg = sampling.SamplerConfig(schedule="cosine", prediction="v", steps=steps)
  fn = lambda x, t, text, *_: 0.5 * x * (1 - t[:, :, None, None, None]) + 0.2 * jnp.sin(x)
  text = jnp.zeros((2, 3), jnp.int32)
  video = jax.random.uniform(jax.random.key(5), SHAPE, minval=-1, maxval=1)
  run = lambda strength, start=video: sampling.sample(fn, cfg, jax.random.key(6), SHAPE, text,
                                                      text, start=start, strength=strength)
  return cfg, fn, video, run


def test_edit_strength_zero_keeps_the_video_and_one_starts_from_noise():
  _, _, video, run = _edit_setup()
  np.testing.assert_allclose(run(0.0), video, atol=1e-6)
  np.testing.assert_allclose(run(1.0), run(1.0, start=None), atol=1e-5)
  assert not np.allclose(run(0.5), video, atol=1e-2)


def test_edit_runs_the_last_strength_of_the_chain_from_the_noised_video():
  cfg, fn, video, run = _edit_setup(steps=6)
  noise_key, loop_key = jax.random.split(jax.random.key(6))
  eps = noise_lib.video_noise(noise_key, SHAPE, 0.0)
  x = objectives.noisy(video, eps, *schedules.alpha_sigma("cosine", jnp.full((2,), 0.5)))
  for i in range(3, 6):  # strength 0.5 of 6 steps: t = 3/6, 2/6, 1/6 -> 0
    t, s = jnp.full((2,), 1 - i / 6), jnp.full((2,), 1 - (i + 1) / 6)
    x = sampling.ddim_step(cfg, x, fn(x, jnp.broadcast_to(t[:, None], (2, 4)), None), t, s,
                           jax.random.normal(jax.random.fold_in(loop_key, i), SHAPE))
  np.testing.assert_allclose(run(0.5), x, rtol=1e-5, atol=1e-5)
  for bad in [-0.1, 1.5]:
    with pytest.raises(ValueError, match="strength"):
      run(bad)
  staggered = sampling.SamplerConfig(steps=6, stagger=1.0)
  with pytest.raises(ValueError, match="stagger"):
    sampling.edit_first_step(staggered, 0.5)


def test_frame_times_run_every_group_from_noise_to_clean():
  """stagger 0: one uniform grid for all frames. stagger 1: group 0 is clean when the last group
  starts; every group is monotone and ends at 0; frames of a group share their time."""
  joint = sampling.SamplerConfig(steps=4, time_group=2)
  for i in range(5):
    np.testing.assert_allclose(sampling.frame_times(joint, i, 6), 1.0 - i / 4)
  cfg = sampling.SamplerConfig(steps=8, stagger=1.0, time_group=2)
  times = np.stack([sampling.frame_times(cfg, i, 6) for i in range(9)])  # [steps + 1, T]
  np.testing.assert_array_equal(times[:, 0::2], times[:, 1::2])
  assert (np.diff(times, axis=0) <= 0).all()
  np.testing.assert_allclose(times[0], 1.0)
  np.testing.assert_allclose(times[-1], 0.0)
  np.testing.assert_allclose(times[4], [0, 0, 0.5, 0.5, 1, 1])


def test_ddim_step_leaves_frames_whose_time_does_not_move():
  cfg = sampling.SamplerConfig(prediction="x0", eta=1.0)
  x = jax.random.normal(jax.random.key(0), SHAPE)
  t = jnp.array([[1.0, 0.5, 0.0, 0.0]] * 2)
  s = jnp.array([[1.0, 0.25, 0.0, 0.0]] * 2)
  out = sampling.ddim_step(cfg, x, jnp.zeros(SHAPE), t, s, jax.random.normal(jax.random.key(1),
                                                                             SHAPE))
  np.testing.assert_array_equal(out[:, [0, 2, 3]], x[:, [0, 2, 3]])
  assert not np.allclose(out[:, 1], x[:, 1])


def test_guidance_combines_conditional_and_unconditional_in_one_batch():
  calls = []

  def fn(x, t, text, *_):
    calls.append(x.shape[0])
    return jnp.where(text[:, :1, None, None, None] > 0, 1.0, 0.0) * jnp.ones_like(x)

  x = jnp.zeros(SHAPE)
  out = sampling.guided(fn, x, jnp.zeros(2), jnp.ones((2, 3), jnp.int32),
                        jnp.zeros((2, 3), jnp.int32), guidance=3.0)
  assert calls == [4]
  np.testing.assert_allclose(out, 3.0)  # 0 + 3 * (1 - 0)


def test_attribute_guidance_adds_the_contrast_prompts_passes_to_the_same_batch():
  calls = []

  def fn(x, t, text, *_):  # predicts each text's first token everywhere
    calls.append(x.shape[0])
    return text[:, 0, None, None, None, None].astype(jnp.float32) * jnp.ones_like(x)

  x, t = jnp.zeros(SHAPE), jnp.zeros(2)
  cond, uncond, positive, negative = (jnp.full((2, 3), v, jnp.int32) for v in (3, 0, 7, 1))
  guided = lambda g, contrast, w=0.5: sampling.guided(fn, x, t, cond, uncond, g,
                                                      contrast=contrast, attribute_guidance=w)
  np.testing.assert_allclose(guided(2.0, (None, negative)), 0 + 2 * (3 - 0) + 0.5 * (3 - 1))
  np.testing.assert_allclose(guided(1.0, (None, negative)), 3 + 0.5 * (3 - 1))
  np.testing.assert_allclose(guided(2.0, (positive, negative)), 6 + 0.5 * (7 - 1))
  assert calls == [6, 4, 8]
  np.testing.assert_allclose(guided(2.0, (positive, negative), w=0.0), 6)
  with pytest.raises(ValueError, match="contrast"):
    guided(2.0, None)


def test_autoguidance_extrapolates_away_from_the_guide_and_composes_with_guidance():
  good = lambda x, t, text, *_: 2.0 + text[:, :1, None, None, None] * jnp.ones_like(x)
  bad = lambda x, t, text, *_: 0.5 * good(x, t, text)
  fn = sampling.autoguided(good, bad, 3.0)
  x, t = jnp.zeros(SHAPE), jnp.zeros(2)
  cond, uncond = jnp.ones((2, 3), jnp.int32), jnp.zeros((2, 3), jnp.int32)
  np.testing.assert_allclose(fn(x, t, cond), 3.0 + 3.0 * (3.0 - 1.5))  # good + w (good - bad)
  # classifier-free guidance over autoguided predictions: uncond' + g (cond' - uncond')
  want = 5.0 + 2.0 * (7.5 - 5.0)  # autoguided uncond: 2 + 3 (2 - 1) = 5; cond: 7.5
  np.testing.assert_allclose(sampling.guided(fn, x, t, cond, uncond, guidance=2.0), want)
  same = sampling.autoguided(good, good, 3.0)  # a guide equal to the model changes nothing
  np.testing.assert_array_equal(same(x, t, cond), good(x, t, cond))


@pytest.mark.parametrize("prediction", objectives.PREDICTIONS)
@pytest.mark.parametrize("schedule", schedules.SCHEDULES)
def test_prediction_conversion_inverts_target(prediction, schedule):
  k1, k2 = jax.random.split(jax.random.key(0))
  x0, eps = jax.random.normal(k1, (5, 7)), jax.random.normal(k2, (5, 7))
  alpha, sigma = schedules.alpha_sigma(schedule, jnp.linspace(0.05, 0.95, 5))
  x_t = objectives.noisy(x0, eps, alpha, sigma)
  got_x0, got_eps = objectives.to_x0_eps(
      prediction, objectives.target(prediction, x0, eps, alpha, sigma), x_t, alpha, sigma)
  np.testing.assert_allclose(got_x0, x0, atol=1e-4)
  np.testing.assert_allclose(got_eps, eps, atol=1e-4)


@pytest.mark.parametrize("prediction", objectives.PREDICTIONS)
def test_min_snr_weight_is_the_same_x0_weight_for_every_prediction(prediction):
  alpha, sigma = schedules.alpha_sigma("cosine", jnp.linspace(0.05, 0.95, 7))
  w = objectives.loss_weight(prediction, "min_snr", alpha, sigma, gamma=5.0)
  w_x0 = w / objectives.x0_error_scale(prediction, alpha, sigma) ** 2
  np.testing.assert_allclose(w_x0, jnp.minimum(schedules.snr(alpha, sigma), 5.0), rtol=1e-4)


@pytest.mark.parametrize("norm", objectives.NORMS)
@pytest.mark.parametrize("prediction", objectives.PREDICTIONS)
def test_x0_weighting_turns_every_prediction_loss_into_the_x0_loss(prediction, norm):
  """With either norm: l1 takes the weight's square root, so |c e| = c |e| holds too."""
  k1, k2, k3 = jax.random.split(jax.random.PRNGKey(3), 3)
  x0, eps = jax.random.normal(k1, (6, 5)), jax.random.normal(k2, (6, 5))
  alpha, sigma = schedules.alpha_sigma("cosine", jnp.linspace(0.05, 0.95, 6))
  x_t = objectives.noisy(x0, eps, alpha, sigma)
  target = objectives.target(prediction, x0, eps, alpha, sigma)
  pred = target + 0.1 * jax.random.normal(k3, x0.shape)
  x0_hat, _ = objectives.to_x0_eps(prediction, pred, x_t, alpha, sigma)
  weight = objectives.loss_weight(prediction, "x0", alpha, sigma)
  loss = objectives.prediction_error(norm, pred - target, weight, axes=1)
  x0_err = x0_hat - x0
  want = jnp.mean(x0_err ** 2 if norm == "l2" else jnp.abs(x0_err), axis=1)
  np.testing.assert_allclose(loss, want, rtol=1e-4)


def test_unknown_loss_norm_rejected():
  with pytest.raises(ValueError, match="loss_norm"):
    objectives.prediction_error("l3", jnp.ones((2, 3)), jnp.ones((2,)), axes=1)


def test_schedules_run_from_clean_to_noise():
  for name in schedules.SCHEDULES:
    a0, s0 = schedules.alpha_sigma(name, 0.0)
    a1, s1 = schedules.alpha_sigma(name, 1.0)
    assert float(a0) == pytest.approx(1.0) and float(s0) == pytest.approx(0.0, abs=1e-6)
    assert float(a1) < 0.01 and float(s1) > 0.99  # linear VP keeps a tiny terminal SNR


@pytest.mark.parametrize("bad", [dict(steps=0), dict(eta=-1.0), dict(schedule="nope"),
                                 dict(prediction="score"), dict(stagger=-0.5),
                                 dict(time_group=0), dict(attribute_guidance=-1.0),
                                 dict(autoguidance=-1.0), dict(autoguidance=float("nan")),
                                 dict(eps_scale=0.0), dict(eps_scale=float("nan"))])
def test_bad_sampler_settings_rejected(bad):
  with pytest.raises(ValueError):
    sampling.SamplerConfig(**bad)


@pytest.mark.parametrize("prediction", objectives.PREDICTIONS)
def test_velocity_weighting_is_the_flow_velocity_error(prediction):
  """For any prediction type, weight x error^2 equals the squared error of eps - x0."""
  alpha, sigma = schedules.alpha_sigma("rectified_flow", jnp.linspace(0.1, 0.9, 5))
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  x0, eps = jax.random.normal(k1, (5, 6)), jax.random.normal(k2, (5, 6))
  x_t = objectives.noisy(x0, eps, alpha, sigma)
  true = objectives.target(prediction, x0, eps, alpha, sigma)
  pred = true + 0.01 * jax.random.normal(k3, (5, 6))
  hat_x0, hat_eps = objectives.to_x0_eps(prediction, pred, x_t, alpha, sigma)
  flow_err = jnp.mean(((hat_eps - hat_x0) - (eps - x0)) ** 2, axis=1)
  w = objectives.loss_weight(prediction, "velocity", alpha, sigma)
  np.testing.assert_allclose(w * jnp.mean((pred - true) ** 2, axis=1), flow_err, rtol=1e-3)


@pytest.mark.parametrize("prediction", objectives.PREDICTIONS)
def test_clipped_velocity_is_velocity_up_to_gamma_then_gamma(prediction):
  """On the x0 error, for every prediction: the velocity weight where it is below gamma (high
  noise, near 1), gamma where velocity's would be larger (low noise)."""
  alpha, sigma = schedules.alpha_sigma("cosine", jnp.linspace(0.02, 0.98, 25), 4.0)
  to_x0 = lambda w: w / objectives.x0_error_scale(prediction, alpha, sigma) ** 2
  clipped = to_x0(objectives.loss_weight(prediction, "clipped_velocity", alpha, sigma, gamma=5.0))
  velocity = to_x0(objectives.loss_weight(prediction, "velocity", alpha, sigma))
  below = velocity < 5.0
  assert 0 < int(below.sum()) < below.size  # the grid crosses the clip
  np.testing.assert_allclose(clipped[below], velocity[below], rtol=1e-4)
  np.testing.assert_allclose(clipped[~below], 5.0, rtol=1e-6)
  assert float(clipped[-1]) == pytest.approx(1.0, abs=0.05)  # pure noise weighs as "none"


@pytest.mark.parametrize("corr", [0.0, 0.5, 0.9])
def test_video_noise_has_unit_variance_and_the_asked_frame_correlation(corr):
  from sora_jax.diffusion import noise
  eps = np.asarray(noise.video_noise(jax.random.key(0), (64, 4, 16, 16, 3), corr))
  assert eps.std() == pytest.approx(1.0, abs=0.02)
  between = np.corrcoef(eps[:, 0].ravel(), eps[:, 3].ravel())[0, 1]
  assert between == pytest.approx(corr, abs=0.03)


def test_ddim_oracle_returns_x0_with_frame_correlated_noise():
  x0 = jax.random.uniform(jax.random.key(0), SHAPE, minval=-1, maxval=1)
  cfg = sampling.SamplerConfig(prediction="x0", steps=6, eta=1.0, frame_noise_corr=0.7)
  text = jnp.zeros((2, 3), jnp.int32)
  out = sampling.sample(oracle(x0, cfg), cfg, jax.random.key(1), SHAPE, text, text)
  np.testing.assert_allclose(out, x0, atol=2e-4)
