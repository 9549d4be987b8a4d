"""The training step: a pure module-level function, jitted once with shardings and donation."""

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from sora_jax.data import tokenizer
from sora_jax.diffusion import noise as noise_lib
from sora_jax.diffusion import known_frames, objectives, schedules, self_condition
from sora_jax.parallel import rules as rules_lib
from sora_jax.train import decoded_loss
from sora_jax.train.state import TrainState, learning_rate


@dataclasses.dataclass(frozen=True)
class StepConfig:
  """The static (hashable) settings the step closes over."""
  schedule: str
  shift: float
  prediction: str
  weighting: str
  min_snr_gamma: float
  caption_dropout: float
  frame_noise_corr: float
  independent_time_prob: float
  time_group: int  # frames that share one noise level (the model's temporal patch)
  known_frames_prob: float = 0.0  # share of clips given some frames clean (known_frames.py)
  known_frames_weights: tuple = known_frames.UNIFORM  # how often each known_frames.PATTERNS
  latent: object = None  # a models.latents.LatentSpace: denoise its latents instead of pixels
  self_condition_prob: float = 0.0  # share of steps fed the model's own estimate (0: no self-cond)
  second_shift_prob: float = 0.0  # share of clips whose noise level is drawn at `second_shift`
  second_shift: float = 1.0
  image_batch: int = 0  # first frames of this many clips also trained as images, each step
  loss_norm: str = "l2"  # l2 | l1 (objectives.prediction_error)
  decoded_weight: float = 0.0  # weight of the pixel loss through the decoder (decoded_loss.py)
  decoded_clips: int = 0  # the least noisy clips of a batch it decodes
  frames: int = 0  # pixel frames of a clip (what a latent clip decodes to)
  # > 0: the self-conditioning estimate, and x_t with it, from this much earlier in the chain
  self_condition_dt: float = 0.0
  object_weight: float = 0.0  # > 0: object positions count 1 + this times the background
  object_threshold: float = 0.5  # RMS distance from the frame's background that is object

  @classmethod
  def from_config(cls, config, latent=None):
    d = config.diffusion
    schedules.check(d.schedule, d.shift)
    objectives.check(d.prediction, d.loss_weighting)
    loss_norm = d.get("loss_norm", "l2")  # configs from before the key: l2
    objectives.check_norm(loss_norm)
    noise_lib.check(d.frame_noise_corr)
    check_prob("diffusion.independent_time_prob", d.independent_time_prob)
    known_prob = float(d.get("known_frames_prob", 0.0))
    check_prob("diffusion.known_frames_prob", known_prob)
    if known_prob and not config.model.get("known_frames", False):
      raise ValueError("diffusion.known_frames_prob > 0 needs model.known_frames = True")
    weights = known_frames.check_weights(d.get("known_frames_weights", known_frames.UNIFORM))
    self_prob = float(d.get("self_condition_prob", 0.0))
    check_prob("diffusion.self_condition_prob", self_prob)
    self_dt = self_condition_dt(config)
    second_prob = float(d.get("second_shift_prob", 0.0))
    second_shift = float(d.get("second_shift", 1.0))
    check_prob("diffusion.second_shift_prob", second_prob)
    if not second_shift > 0:
      raise ValueError(f"diffusion.second_shift={second_shift}; must be > 0")
    decoded_weight = float(d.get("decoded_loss_weight", 0.0))
    decoded_clips = int(d.get("decoded_loss_clips", 4))
    decoded_loss.check(decoded_weight, decoded_clips, config.train.batch_size)
    if decoded_weight and latent is None:
      raise ValueError("diffusion.decoded_loss_weight > 0 needs a latent DiT (model.vae_workdir)")
    object_weight = float(d.get("object_weight", 0.0))
    object_threshold = float(d.get("object_threshold", 0.5))
    objectives.check_object_weight(object_weight, object_threshold)
    return cls(d.schedule, float(d.shift), d.prediction, d.loss_weighting,
               float(d.min_snr_gamma), float(d.caption_dropout), float(d.frame_noise_corr),
               float(d.independent_time_prob), int(config.model.patch[0]), known_prob, weights,
               latent, self_prob if self_condition.enabled(config.model) else 0.0,
               second_prob, second_shift, image_batch(config), loss_norm, decoded_weight,
               decoded_clips, int(config.data.frames), self_dt, object_weight, object_threshold)


def self_condition_dt(config) -> float:
  """diffusion.self_condition_lag sampler steps (sample.steps to the chain) in the model's time:
  0 trains the estimate at the step's own noise level, 1 at the step before, as sampling does."""
  lag = int(config.diffusion.get("self_condition_lag", 0))
  if lag < 0:
    raise ValueError(f"diffusion.self_condition_lag={lag}; must be >= 0 (sampler steps)")
  if lag and not self_condition.enabled(config.model):
    raise ValueError(f"diffusion.self_condition_lag={lag} needs model.self_condition = True")
  return lag / int(config.sample.steps)


def image_batch(config) -> int:
  """train.image_batch, checked: images (T = 1) need a model whose temporal patch is 1."""
  n = int(config.train.get("image_batch", 0))
  if not 0 <= n <= config.train.batch_size:
    raise ValueError(f"train.image_batch={n}; must be in [0, train.batch_size="
                     f"{config.train.batch_size}]")
  if n and config.model.patch[0] != 1:
    raise ValueError(f"train.image_batch={n} needs model.patch[0] = 1 (an image is one frame); "
                     f"got patch {tuple(config.model.patch)}")
  return n


def check_prob(name: str, p) -> None:
  if not 0.0 <= p <= 1.0:
    raise ValueError(f"{name}={p}; must be in [0, 1]")


def null_text(batch: int, length: int):
  """The unconditional caption: BOS then padding (what caption dropout trains and CFG uses)."""
  return jnp.zeros((batch, length), jnp.int32).at[:, 0].set(tokenizer.BOS_ID)


def diffusion_loss(params, graphdef, batch, key, frozen, cfg: StepConfig):
  """Weighted regression of the model's prediction at a random time on a random noise draw.

  Returns (loss, {"mse": unweighted mean squared error, ...}). With `cfg.latent` the clip is
  first encoded by the frozen VAE whose arrays are `frozen`, unless the batch brings its "latent".
  With `cfg.image_batch` the first frames of that many clips are also trained as images; with
  `cfg.decoded_weight` the least noisy clips' estimates are also judged in pixels, decoded.
  """
  if "latent" in batch:  # read from a pre-encoded cache (data/latent_cache.py)
    x0 = batch["latent"]
  elif cfg.latent is not None:
    x0 = cfg.latent.encode(frozen, batch["video"])
  else:
    x0 = batch["video"]
  model = nnx.merge(graphdef, params)
  clips = denoising_errors(model, x0, batch["text"], key, cfg)
  weighted, err = clips.weighted, clips.squared
  if cfg.image_batch:  # its own key: the clips draw what they drew without images
    n = cfg.image_batch
    images = denoising_errors(model, x0[:n, :1], batch["text"][:n], jax.random.fold_in(key, 2),
                              cfg, known_frames_prob=0.0)
    weighted, err = (jnp.concatenate([a.ravel(), b.ravel()]) for a, b in
                     ((weighted, images.weighted), (err, images.squared)))  # frames count alike
  loss, aux = jnp.mean(weighted), {"mse": jnp.mean(err)}
  if cfg.decoded_weight:
    aux["decoded_mse"] = decoded_loss.decoded_error(cfg.latent, frozen, x0, clips.x0_hat, clips.t,
                                                    cfg.decoded_clips, cfg.frames)
    loss = loss + cfg.decoded_weight * aux["decoded_mse"]
  return loss, aux


class Errors(NamedTuple):
  """What `denoising_errors` measured: per clip and frame [B, T] losses, and what they came from."""
  weighted: jax.Array  # the training loss
  squared: jax.Array  # the plain squared error of the prediction
  x0_hat: jax.Array  # the clean-clip estimate the prediction implies [B, T, ...]
  t: jax.Array  # the noise levels [B, T]


def denoising_errors(model, x0, text, key, cfg: StepConfig, known_frames_prob=None):
  """Errors of the model's prediction on clips x0 [B, T, ...] noised to random times, captions
  dropped and frames given as `cfg` says."""
  known_prob = cfg.known_frames_prob if known_frames_prob is None else known_frames_prob
  b = x0.shape[0]
  k_t, k_eps, k_drop, k_known = jax.random.split(key, 4)
  t = frame_times(k_t, b, x0.shape[1], cfg.time_group, cfg.independent_time_prob)  # [B, T]
  if cfg.second_shift_prob:  # its own key: runs without it draw what they drew before
    t = mixed_shift_times(jax.random.fold_in(k_t, 1), t, cfg.second_shift_prob,
                          cfg.second_shift / cfg.shift)
  eps = noise_lib.video_noise(k_eps, x0.shape, cfg.frame_noise_corr)
  alpha, sigma = schedules.alpha_sigma(cfg.schedule, t, cfg.shift)
  x_t = objectives.noisy(x0, eps, alpha, sigma)
  drop = jax.random.bernoulli(k_drop, cfg.caption_dropout, (b,))
  text = jnp.where(drop[:, None], null_text(b, text.shape[1]), text)
  known, mask = None, None
  if known_prob:
    known = x0
    mask = known_frames.random_mask(k_known, b, x0.shape[1], known_prob, cfg.known_frames_weights)
  # tokens skipping the route's blocks: keys of their own, so runs without routing draw as before
  route = lambda i: jax.random.fold_in(k_known, 2 + i) if model.route else None
  estimate = None
  if model.self_condition:  # its own key: runs without it draw what they drew before
    k_self = jax.random.fold_in(k_known, 1)
    first_pass = lambda x, level, zeros: model(x, level, text, known, mask, zeros, route(0))
    if cfg.self_condition_dt:
      x_t, estimate = self_condition.previous_step(
          k_self, cfg.self_condition_prob, first_pass, x0, eps, x_t, t, cfg.self_condition_dt,
          cfg.schedule, cfg.shift, cfg.prediction)
      eps = objectives.to_x0_eps("x0", x0, x_t, alpha, sigma)[1]  # the noise x_t now holds
    else:
      estimate = self_condition.training_estimate(
          k_self, cfg.self_condition_prob, lambda zeros: first_pass(x_t, t, zeros), x_t,
          cfg.prediction, alpha, sigma)
  with jax.named_scope("dit_forward"):
    pred = model(x_t, t, text, known, mask, estimate, route(1))
  diff = pred - objectives.target(cfg.prediction, x0, eps, alpha, sigma)
  axes = tuple(range(2, x0.ndim))
  weight = objectives.loss_weight(cfg.prediction, cfg.weighting, alpha, sigma, cfg.min_snr_gamma)
  counted = diff  # the error the loss sees: object positions scaled up when asked
  if cfg.object_weight:
    counted = diff * jnp.sqrt(objectives.object_weights(x0, cfg.object_weight,
                                                         cfg.object_threshold))
  return Errors(objectives.prediction_error(cfg.loss_norm, counted, weight, axes),
                jnp.mean(jnp.square(diff), axis=axes),
                objectives.to_x0_eps(cfg.prediction, pred, x_t, alpha, sigma)[0], t)


def frame_times(key, batch: int, frames: int, group: int, independent_prob: float):
  """Training noise levels [B, T] in (0, 1]: one per clip, or - for a share `independent_prob`
  of clips - one per group of `group` frames, drawn independently (Diffusion Forcing, Chen et
  al. 2024). Clean-ish frames next to noisy ones make the model learn where things go next."""
  k_clip, k_group, k_pick = jax.random.split(key, 3)
  shared = jax.random.uniform(k_clip, (batch, 1), minval=1e-4, maxval=1.0)
  if independent_prob == 0.0:
    return jnp.broadcast_to(shared, (batch, frames))
  own = jax.random.uniform(k_group, (batch, -(-frames // group)), minval=1e-4, maxval=1.0)
  own = jnp.repeat(own, group, axis=1)[:, :frames]
  pick = jax.random.bernoulli(k_pick, independent_prob, (batch, 1))
  return jnp.where(pick, own, shared)


def mixed_shift_times(key, t, prob: float, ratio: float):
  """Times [B, T] of a share `prob` of clips re-drawn as if under a shift `ratio` times the
  schedule's, still in the model's own time: shifts compose by multiplying (a shift scales the
  odds t / (1 - t)), so warping by `ratio` then by the schedule's shift warps by their product.
  A ratio below 1 trains those clips nearer the clean end, above 1 nearer pure noise. (On the
  latent recipe, half the clips at shift 1 under shift 4 drew fewer squares:
  experiments/STUDIES.md.)"""
  pick = jax.random.bernoulli(key, prob, (t.shape[0], 1))
  return jnp.where(pick, schedules.shift_time(t, ratio), t)


def ema_update(ema, params, decay: float, step):
  """EMA with the usual warm start, so early averages are not dominated by the random init.
  Written as a step toward the parameters, so a parameter that does not move (a frozen encoder)
  keeps its average bit for bit."""
  d = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
  return jax.tree.map(lambda e, p: e + (1.0 - d) * (p - e), ema, params)


def train_step(state: TrainState, batch, base_key, frozen, *, graphdef, tx, loss_fn, ema_decay,
               lr_fn):
  """One optimizer update. The RNG is fold_in(base_key, step), so a resumed run repeats exactly.

  loss_fn(params, graphdef, batch, key, frozen) -> (loss, {name: scalar}); `frozen` holds arrays
  the loss reads but training leaves alone (the VAE of latent diffusion; {} if none).
  """
  key = jax.random.fold_in(base_key, state.step)
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  (loss, aux), grads = grad_fn(state.params, graphdef, batch, key, frozen)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  new_state = TrainState(step=state.step + 1, params=params, opt_state=opt_state,
                         ema_params=ema_update(state.ema_params, params, ema_decay, state.step))
  metrics = {"loss": loss, **aux, "grad_norm": optax.tree.norm(grads),
             "param_norm": optax.tree.norm(params), "lr": lr_fn(state.step)}
  return new_state, metrics


def batch_shardings(mesh, rules, batch_like):
  """Batch arrays split over the `batch` logical axis, other axes replicated."""
  return jax.tree.map(
      lambda x: rules_lib.named(mesh, rules, ("batch",) + (None,) * (len(x.shape) - 1)),
      batch_like)


def jit_train_step(config, graphdef, tx, state_sharding, batch_sharding, mesh, *, loss_fn):
  """train_step compiled with in/out shardings and the state donated; frozen arrays replicated.
  It is traced under the mesh and `config.mesh.rules`, so the model's activation constraints
  apply."""
  step = functools.partial(train_step, graphdef=graphdef, tx=tx, loss_fn=loss_fn,
                           ema_decay=float(config.train.ema_decay),
                           lr_fn=learning_rate(config.train))
  rules = rules_lib.as_rules(config.mesh.rules)

  def constrained_step(*args):
    with rules_lib.activate_in_trace(mesh, rules):
      return step(*args)

  repl = rules_lib.replicated(mesh)
  return jax.jit(constrained_step, in_shardings=(state_sharding, batch_sharding, repl, repl),
                 out_shardings=(state_sharding, repl), donate_argnums=0)
