import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sora_jax.diffusion import objectives, sampling, schedules, self_condition

SHAPE = (2, 4, 8, 8, 3)


@pytest.mark.parametrize("guidance,prediction", [(1.0, "x0"), (3.0, "x0"), (1.0, "v")])
def test_sampler_carries_each_steps_x0_estimate_into_the_next(guidance, prediction):
  """A model whose x0 is its previous estimate + 1 ends at `steps` exactly: the first step sees
  zeros and every later one the x0 the step before implied (both halves of the CFG batch)."""
  cfg = sampling.SamplerConfig(prediction=prediction, steps=6, guidance=guidance,
                               self_condition=True)

  def model_fn(x_t, t, text, known, mask, estimate):
    del text, known, mask
    x0 = estimate + 1.0
    if prediction == "x0":
      return x0
    a, s = schedules.alpha_sigma(cfg.schedule, t, cfg.shift)
    a, s = a[..., None, None, None], s[..., None, None, None]
    eps = (x_t - a * x0) / jnp.maximum(s, 1e-12)
    return a * eps - s * x0  # v

  text = jnp.zeros((2, 3), jnp.int32)
  out = jax.jit(lambda k: sampling.sample(model_fn, cfg, k, SHAPE, text, text))(jax.random.key(0))
  np.testing.assert_allclose(out, 6.0, atol=1e-4)


def test_sampler_without_self_condition_calls_the_model_with_five_arguments():
  cfg = sampling.SamplerConfig(prediction="x0", steps=2)
  model_fn = lambda x_t, t, text, known, mask: jnp.ones_like(x_t)
  text = jnp.zeros((2, 3), jnp.int32)
  np.testing.assert_allclose(sampling.sample(model_fn, cfg, jax.random.key(0), SHAPE, text, text),
                             1.0, atol=1e-6)


def test_training_estimate_is_zeros_or_the_stop_gradient_first_pass():
  x_t = jax.random.normal(jax.random.key(1), SHAPE)
  alpha, sigma = schedules.alpha_sigma("cosine", jnp.full((2, 4), 0.3), 1.0)

  def estimate(w, prob, key=jax.random.key(2)):
    first_pass = lambda zeros: zeros + w * x_t  # an x0 prediction
    return self_condition.training_estimate(key, prob, first_pass, x_t, "x0", alpha, sigma)

  np.testing.assert_array_equal(estimate(2.0, 0.0), 0.0)
  np.testing.assert_allclose(estimate(2.0, 1.0), 2.0 * x_t, rtol=1e-6)
  assert float(jax.grad(lambda w: jnp.sum(estimate(w, 1.0)))(2.0)) == 0.0  # no gradient
  drawn = [bool(jnp.any(estimate(1.0, 0.5, jax.random.key(k)) != 0)) for k in range(40)]
  assert 10 < sum(drawn) < 30, sum(drawn)  # one draw per batch, about half of them


def _previous_step(first_pass, prob=1.0, prediction="x0"):
  """previous_step (dt 0.1) on a fixed clip and noise at t = 0.2 and 0.95 (0.95 + dt is clipped
  to 1); returns (x0, t, x_t, x_in, estimate)."""
  x0, eps = (jax.random.normal(jax.random.key(k), SHAPE) for k in (3, 4))
  t = jnp.array([[0.2] * 4, [0.95] * 4])
  x_t = objectives.noisy(x0, eps, *schedules.alpha_sigma("cosine", t, 2.0))
  out = self_condition.previous_step(jax.random.key(5), prob, first_pass(x0), x0, eps, x_t, t,
                                     0.1, "cosine", 2.0, prediction)
  return (x0, t, x_t) + out


@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_previous_step_of_an_exact_model_is_the_forward_noised_clip(prediction):
  """A model that knows x0 takes the clip noised to t + dt exactly to the clip noised to t with
  the same noise: the one-step rollout adds only the model's own error."""
  def first_pass(x0):
    def fn(x, t, zeros):
      a, s = schedules.alpha_sigma("cosine", t, 2.0)
      eps = (x - objectives.expand(a, x) * x0) / objectives.expand(s, x)
      return x0 + zeros if prediction == "x0" else objectives.target("v", x0, eps, a, s)
    return fn

  x0, _, x_t, x_in, estimate = _previous_step(first_pass, prediction=prediction)
  np.testing.assert_allclose(x_in, x_t, atol=1e-4)
  np.testing.assert_allclose(estimate, x0, atol=1e-4)


def test_previous_step_hands_on_the_models_error_scaled_as_one_ddim_step():
  """With x0_hat = x0 + d the input is x_t + (alpha_t - alpha_t' sigma_t / sigma_t') d, t' =
  min(t + dt, 1); no gradient reaches the first pass; prob 0 gives (x_t, zeros)."""
  d = jax.random.normal(jax.random.key(6), SHAPE)
  first_pass = lambda x0, w=1.0: lambda x, t, zeros: x0 + w * d
  x0, t, x_t, x_in, estimate = _previous_step(first_pass)
  a, s = schedules.alpha_sigma("cosine", t, 2.0)
  a_prev, s_prev = schedules.alpha_sigma("cosine", jnp.minimum(t + 0.1, 1.0), 2.0)
  c = objectives.expand(a - a_prev * s / s_prev, d)
  np.testing.assert_allclose(x_in, x_t + c * d, atol=1e-5)
  np.testing.assert_allclose(estimate, x0 + d, atol=1e-6)
  assert float(jnp.min(jnp.abs(c[0]))) > 0.01  # t = 0.2: a real share of the error
  grad = jax.grad(lambda w: jnp.sum(_previous_step(lambda x0: first_pass(x0, w))[3]))(1.0)
  assert float(grad) == 0.0
  _, _, x_t, x_in, estimate = _previous_step(first_pass, prob=0.0)
  np.testing.assert_array_equal(x_in, x_t)
  np.testing.assert_array_equal(estimate, 0.0)


def test_estimate_of_the_wrong_shape_rejected():
  x = jnp.zeros((1, 2, 4, 4, 7))
  with pytest.raises(ValueError, match="self-conditioning estimate"):
    self_condition.model_inputs(x, jnp.zeros((1, 2, 4, 4, 4)), 3)
  assert self_condition.model_inputs(x, None, 3).shape == (1, 2, 4, 4, 10)
