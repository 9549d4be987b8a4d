"""What the model predicts (v, eps, x0, flow), its regression target, and loss weights.

Every prediction type is a linear function of (x0, eps) at a given (alpha, sigma), so converting a
prediction back to (x0_hat, eps_hat) - which DDIM needs - is exact for every schedule.
"""

import jax.numpy as jnp

from sora_jax.diffusion import schedules

PREDICTIONS = ("v", "eps", "x0", "flow")
WEIGHTINGS = ("none", "x0", "min_snr", "velocity", "clipped_velocity")
NORMS = ("l2", "l1")
_MIN_SIGMA = 0.05  # floor of the noise level in the velocity weighting (as in JiT)
_TINY = 1e-8


def check(prediction: str, weighting: str = "none") -> None:
  if prediction not in PREDICTIONS:
    raise ValueError(f"diffusion.prediction={prediction!r}; allowed: {', '.join(PREDICTIONS)}")
  if weighting not in WEIGHTINGS:
    raise ValueError(f"diffusion.loss_weighting={weighting!r}; allowed: {', '.join(WEIGHTINGS)}")


def check_norm(norm: str) -> None:
  if norm not in NORMS:
    raise ValueError(f"diffusion.loss_norm={norm!r}; allowed: {', '.join(NORMS)}")


def prediction_error(norm: str, diff, weight, axes):
  """Per-example (or per-frame) loss of the prediction error `diff`, averaged over `axes`.

  l2 regresses to the posterior mean, which on a shape the model is unsure of is a blend: a
  square's corners, lit only where both edges are certain, fade first. l1 regresses to the
  per-coordinate median, which commits. `weight` is `loss_weight`'s (for squared errors); l1
  takes its square root, so a weighting names the same error either way (|c e| = c |e|).
  """
  check_norm(norm)
  if norm == "l1":
    return jnp.sqrt(weight) * jnp.mean(jnp.abs(diff), axis=axes)
  return weight * jnp.mean(jnp.square(diff), axis=axes)


def object_weights(x0, boost: float, threshold: float):
  """Per-position loss weights [B, T, H, W, 1] that count the object `1 + boost` times the
  background, each frame's weights averaging 1.

  An object is wherever the clean clip strays from its frame's background, read as the
  per-channel median over positions (objects cover less than half of a frame): the RMS over
  channels of x0 - median above `threshold`. On the 8 x 8 latents of the shapes world a small
  object is ~6% of a frame's positions, so under a plain mean its corners hardly count next to
  the black around it.
  """
  check_object_weight(boost, threshold)
  b, t = x0.shape[:2]
  flat = x0.reshape(b, t, -1, x0.shape[-1])
  background = jnp.median(flat, axis=2, keepdims=True)
  distance = jnp.sqrt(jnp.mean(jnp.square(flat - background), axis=-1, keepdims=True))
  w = 1.0 + boost * (distance > threshold).astype(jnp.float32)
  w = w / jnp.mean(w, axis=2, keepdims=True)
  return w.reshape(x0.shape[:-1] + (1,))


def check_object_weight(boost: float, threshold: float) -> None:
  if not boost >= 0:
    raise ValueError(f"diffusion.object_weight={boost}; must be >= 0")
  if not threshold > 0:
    raise ValueError(f"diffusion.object_threshold={threshold}; must be > 0")


def expand(a, x):
  """Per-example [B] or per-frame [B, T] values -> broadcastable against x [B, T, ...]."""
  a = jnp.asarray(a, jnp.float32)
  return a.reshape(a.shape + (1,) * (x.ndim - a.ndim))


def noisy(x0, eps, alpha, sigma):
  """x_t = alpha x0 + sigma eps, with per-example [B] or per-frame [B, T] alpha / sigma."""
  return expand(alpha, x0) * x0 + expand(sigma, x0) * eps


def target(prediction, x0, eps, alpha, sigma):
  """The regression target for `prediction` given the clean x0 and the noise eps."""
  check(prediction)
  a, s = expand(alpha, x0), expand(sigma, x0)
  return {"v": lambda: a * eps - s * x0, "eps": lambda: eps, "x0": lambda: x0,
          "flow": lambda: eps - x0}[prediction]()


def to_x0_eps(prediction, pred, x_t, alpha, sigma):
  """Inverts `target`: (x0_hat, eps_hat) from a prediction at x_t = alpha x0 + sigma eps."""
  check(prediction)
  a, s = expand(alpha, x_t), expand(sigma, x_t)
  if prediction == "x0":
    return pred, (x_t - a * pred) / jnp.maximum(s, _TINY)
  if prediction == "eps":
    return (x_t - s * pred) / jnp.maximum(a, _TINY), pred
  if prediction == "v":  # v = a eps - s x0
    norm = a**2 + s**2
    return (a * x_t - s * pred) / norm, (s * x_t + a * pred) / norm
  x0 = (x_t - s * pred) / jnp.maximum(a + s, _TINY)  # flow: u = eps - x0
  return x0, x0 + pred


def x0_error_scale(prediction, alpha, sigma):
  """c such that an error e in the prediction is an error c * e in x0_hat."""
  check(prediction)
  a, s = jnp.asarray(alpha), jnp.asarray(sigma)
  return {"x0": lambda: jnp.ones_like(a), "eps": lambda: s / jnp.maximum(a, _TINY),
          "v": lambda: s / (a**2 + s**2), "flow": lambda: s / jnp.maximum(a + s, _TINY)}[prediction]()


def velocity_x0_weight(alpha, sigma):
  """(1 + alpha / sigma)^2: the squared flow-velocity error (eps - x0) per squared x0 error at a
  fixed x_t (sigma floored at _MIN_SIGMA)."""
  return (1.0 + jnp.asarray(alpha) / jnp.maximum(sigma, _MIN_SIGMA)) ** 2


def loss_weight(prediction, weighting, alpha, sigma, gamma=5.0):
  """Per-example weight of the squared prediction error.

  none: the prediction's own squared error. x0: the x0 error whatever the prediction, so a v or
  eps model trains on the loss an x0 model does but keeps the skip connection its parametrisation
  gives (x0_hat = alpha x_t - sigma v: a nearly clean input is copied, not redrawn; Karras et al.
  2022 precondition the same way). min_snr (Hang et al. 2023) weighs the x0 error by
  min(SNR, gamma). velocity: the squared error of the implied flow velocity eps - x0, the loss that
  lets an x0-predicting model with large patches learn (Li & He 2025, "Back to Basics").
  clipped_velocity: the velocity weight on the x0 error, (1 + alpha / sigma)^2, clipped at gamma:
  high noise weighs as with none, low noise up to gamma times more (not the ~400 times velocity
  reaches), so the last steps of the chain, where corners are drawn, count without drowning the
  first ones, where layout and motion are. All are carried into the prediction's own space
  through `x0_error_scale`, so they mean the same for every prediction type.
  """
  check(prediction, weighting)
  if weighting == "none":
    return jnp.ones_like(jnp.asarray(alpha))
  if weighting == "x0":
    return x0_error_scale(prediction, alpha, sigma) ** 2
  if weighting == "velocity":
    w_x0 = velocity_x0_weight(alpha, sigma)
  elif weighting == "clipped_velocity":
    w_x0 = jnp.minimum(velocity_x0_weight(alpha, sigma), gamma)
  else:
    w_x0 = jnp.minimum(schedules.snr(alpha, sigma), gamma)
  return w_x0 * x0_error_scale(prediction, alpha, sigma) ** 2
