import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sora_jax.diffusion import sampling, schedules, self_condition

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


def test_estimate_of_the_wrong_shape_rejected():
  x = jnp.zeros((1, 2, 4, 4, 7))
  with pytest.raises(ValueError, match="self-conditioning estimate"):
    self_condition.model_inputs(x, jnp.zeros((1, 2, 4, 4, 4)), 3)
  assert self_condition.model_inputs(x, None, 3).shape == (1, 2, 4, 4, 10)
