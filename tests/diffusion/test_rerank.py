import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sora_jax.diffusion import objectives, rerank, sampling, schedules

SHAPE = (3, 2, 4, 4, 2)


def constant_model(cfg, *, feed_back=False):
  """A model whose x0 estimate is the first text token (1 told the prompt, 0 told nothing),
  plus the self-conditioning estimate when `feed_back`; it answers in cfg.prediction's terms."""
  def model_fn(x_t, t, text, known, mask, estimate=None):
    assert known is None and mask is None
    x0 = jnp.broadcast_to(objectives.expand(text[:, 0].astype(jnp.float32), x_t), x_t.shape)
    if feed_back:
      x0 = x0 + estimate
    alpha, sigma = schedules.alpha_sigma(cfg.schedule, t, cfg.shift)
    eps = (x_t - objectives.expand(alpha, x_t) * x0) / objectives.expand(sigma, x_t)
    return objectives.target(cfg.prediction, x0, eps, alpha, sigma)
  return model_fn


def expected_pmi(cfg, z0, levels, cond_x0):
  """The closed form: eps_hat - eps = alpha / sigma (z0 - x0_hat), so the score is
  mean_k SNR_k [mean z0^2 - mean (z0 - cond_x0)^2] (told nothing, the model answers 0)."""
  alpha, sigma = schedules.alpha_sigma(cfg.schedule, rerank.level_times(levels), cfg.shift)
  snr = float(np.mean(np.square(np.asarray(alpha) / np.asarray(sigma))))
  axes = tuple(range(1, z0.ndim))
  return snr * (np.mean(z0**2, axes) - np.mean((z0 - cond_x0) ** 2, axes))


def texts(batch):
  return jnp.ones((batch, 3), jnp.int32), jnp.zeros((batch, 3), jnp.int32)


@pytest.mark.parametrize("prediction", objectives.PREDICTIONS)
def test_pmi_matches_the_closed_form(prediction):
  cfg = sampling.SamplerConfig(prediction=prediction, shift=2.0)
  z0 = np.asarray(jax.random.normal(jax.random.key(0), SHAPE))
  cond, uncond = texts(SHAPE[0])
  got = rerank.gap_scores(constant_model(cfg), cfg, jax.random.key(1), jnp.asarray(z0), cond,
                          (uncond,), levels=4)
  np.testing.assert_allclose(got, expected_pmi(cfg, z0, 4, 1.0), rtol=1e-4, atol=1e-4)


def test_a_self_conditioning_model_is_scored_on_its_second_pass():
  """The first pass (estimate zeros) answers the token; fed back, the second answers twice it."""
  cfg = sampling.SamplerConfig(prediction="x0", self_condition=True)
  z0 = np.asarray(jax.random.normal(jax.random.key(0), SHAPE))
  cond, uncond = texts(SHAPE[0])
  got = rerank.gap_scores(constant_model(cfg, feed_back=True), cfg, jax.random.key(1),
                          jnp.asarray(z0), cond, (uncond,), levels=3)
  np.testing.assert_allclose(got, expected_pmi(cfg, z0, 3, 2.0), rtol=1e-4, atol=1e-4)


def test_best_of_keeps_each_prompts_highest_scoring_candidate():
  """Candidates filled with value v score mean_k SNR_k (2 v - 1) against the model answering 1:
  the pick is each prompt's largest v."""
  cfg = sampling.SamplerConfig(prediction="eps", candidates=4, rerank_levels=2)
  batch = SHAPE[0]
  values = np.asarray(jax.random.normal(jax.random.key(2), (4, batch)), np.float32)

  def draw(key, repeat):
    del key
    rows = repeat(jnp.zeros(SHAPE))
    return rows + jnp.asarray(values.reshape(-1))[:, None, None, None, None]

  cond, uncond = texts(batch)
  out = rerank.best_of(constant_model(cfg), cfg, draw, jax.random.key(0), batch, cond, (uncond,))
  assert out.shape == SHAPE
  np.testing.assert_allclose(out[:, 0, 0, 0, 0], values.max(0))
  # scored as shown (here negated), kept as drawn: the smallest v, not its negation
  shown = rerank.best_of(constant_model(cfg), cfg, draw, jax.random.key(0), batch, cond,
                         (uncond,), shown=lambda z: -z)
  np.testing.assert_allclose(shown[:, 0, 0, 0, 0], values.min(0))


def test_the_gap_is_taken_to_the_nearest_other_text():
  """Against several texts the score is the smallest of the gaps to each alone."""
  cfg = sampling.SamplerConfig(prediction="x0")
  z0 = jnp.asarray(jax.random.normal(jax.random.key(0), SHAPE))
  fill = lambda v: jnp.full((SHAPE[0], 3), v, jnp.int32)
  gap = lambda *others: rerank.gap_scores(constant_model(cfg), cfg, jax.random.key(1), z0,
                                          fill(1), others, levels=3)
  both, near, far = gap(fill(0), fill(3)), gap(fill(0)), gap(fill(3))
  assert not np.allclose(near, far)
  np.testing.assert_allclose(both, np.minimum(near, far), rtol=1e-6)


@pytest.mark.parametrize("kw,message", [({"candidates": 0}, "candidates=0"),
                                        ({"rerank_levels": 0}, "rerank_levels=0"),
                                        ({"rerank_score": "clip"}, "rerank_score='clip'")])
def test_sampler_config_rejects_bad_reranking(kw, message):
  with pytest.raises(ValueError, match=message):
    sampling.SamplerConfig(**kw)
