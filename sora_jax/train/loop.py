"""The training loop: set up (or resume) a run, step it, log, checkpoint, stop cleanly on SIGTERM
or at a time limit, and size the schedule to a wall-clock budget (budget.py)."""

import dataclasses
import functools
import json
import math
import os
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np
import tqdm
from flax import nnx
from jax.experimental import multihost_utils

from sora_jax.data import latent_cache, pipeline, shapes
from sora_jax.parallel import mesh as mesh_lib
from sora_jax.parallel import rules as rules_lib
from sora_jax.models import latents, patching, vae as vae_lib
from sora_jax.train import budget, checkpoint, metrics, state as state_lib, step as step_lib
from sora_jax.train import vae_loss


@dataclasses.dataclass
class Run:
  """Everything a training run holds between steps."""
  config: object
  workdir: str
  mesh: object
  rules: tuple
  graphdef: object
  state: state_lib.TrainState
  step_fn: object
  data: object  # the Grain iterator (its state is checkpointed)
  ckpt: checkpoint.Checkpointer
  batch_sharding: dict
  frozen: dict  # arrays the loss reads but training leaves alone (a latent DiT's VAE)
  state_sharding: object
  loss_fn: object


class SigtermFlag:
  """Turns SIGTERM into a flag the loop checks between steps (restored on exit)."""

  def __init__(self):
    self.raised = False
    self._old = None

  def __enter__(self):
    try:
      self._old = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # not the main thread: no handler, no flag
      self._old = None
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.raised = True

  def __exit__(self, *exc):
    if self._old is not None:
      signal.signal(signal.SIGTERM, self._old)


def setup(config, workdir) -> Run:
  """Builds data, mesh and state; restores the latest checkpoint of `workdir` if there is one
  (and, for a run fitted to a budget, the steps it was fitted to)."""
  ckpt = checkpoint.Checkpointer(workdir, max_to_keep=config.train.max_to_keep)
  if config.train.get("fit_minutes", 0.0) and ckpt.latest_step() is not None:
    config = budget.resumed(config, ckpt.restore_config())
  mesh = mesh_lib.make_mesh(config.mesh)
  rules = rules_lib.as_rules(config.mesh.rules)
  shapes.build(config.data)
  loss_fn, frozen = task_loss(config)  # first: it checks the VAE and any latent cache
  data = iter(pipeline.train_dataset(
      config.data, batch_size=config.train.batch_size, seed=config.seed,
      process_index=jax.process_index(), process_count=jax.process_count()))
  tx = state_lib.optimizer(config)
  with rules_lib.activate(mesh, rules):
    graphdef, state, shardings = state_lib.create_state(config, mesh, rules, tx)
  if ckpt.latest_step() is not None:
    abstract = checkpoint.abstract_with_shardings(state, shardings)
    del state  # free the fresh init before the restored copy arrives
    state = ckpt.restore(ckpt.latest_step(), abstract, data)
  elif config.task == "vae" and config.vae.init_from:
    state = start_from(state, shardings, config.vae.init_from, "vae")
  clip = "latent" if config.data.get("latent_cache") else "video"
  sample = {clip: jax.ShapeDtypeStruct((1, 1, 1, 1, 1), "float32"),
            "text": jax.ShapeDtypeStruct((1, 1), "int32")}
  batch_sharding = step_lib.batch_shardings(mesh, rules, sample)
  step_fn = step_lib.jit_train_step(config, graphdef, tx, shardings, batch_sharding, mesh,
                                    loss_fn=loss_fn)
  return Run(config, workdir, mesh, rules, graphdef, state, step_fn, data, ckpt, batch_sharding,
             frozen, shardings, loss_fn)


def fit_to(run: Run, steps: int) -> None:
  """The run's schedule sized to `steps` (budget.py): the step compiled again for it, and the
  fitted config saved."""
  run.config = budget.with_steps(run.config, steps)
  run.step_fn = step_lib.jit_train_step(run.config, run.graphdef, state_lib.optimizer(run.config),
                                        run.state_sharding, run.batch_sharding, run.mesh,
                                        loss_fn=run.loss_fn)
  if jax.process_index() == 0:
    save_config(run.config, run.workdir)


def start_from(state, shardings, workdir, task: str):
  """A fresh state whose parameters (and EMA) are those of the trained `task` model in
  `workdir`, checked to have the same shapes; the optimizer starts afresh."""
  from sora_jax.train import restore  # noqa: PLC0415 (restore builds states itself)
  params = restore.load_trained(workdir, task=task).params
  want = jax.tree.map(lambda x: (x.shape, x.dtype), state.params)
  got = jax.tree.map(lambda x: (x.shape, x.dtype), params)
  if want != got:
    raise ValueError(f"{task}.init_from={workdir}: its parameters do not fit this config's "
                     f"model (make the {task}.* architecture keys match that run's config.json)")
  params = jax.device_put(params, shardings.params)
  return state.replace(params=params, ema_params=jax.tree.map(jnp.copy, params))


def task_loss(config):
  """(loss_fn, frozen arrays) of `config.task`: the diffusion loss, in pixel space or in a
  trained VAE's latent space, or the VAE's reconstruction loss."""
  if config.task == "vae":
    cfg = vae_loss.VaeLossConfig.from_config(config)
    frozen = {}
    if cfg.errors.active and cfg.decoder_only:  # errors in the units of the source's latents
      frozen = latents.stats_arrays(latents.stats_of(config.vae.init_from))
    return functools.partial(vae_loss.vae_loss, cfg=cfg), frozen
  latent, frozen = None, {}
  if config.data.get("latent_cache") and not config.model.vae_workdir:
    raise ValueError("data.latent_cache is set but model.vae_workdir is not: the cache holds "
                     "the latents of that VAE")
  if config.model.vae_workdir:
    decodes = bool(config.diffusion.get("decoded_loss_weight", 0.0))  # decoded_loss.py
    if config.data.get("latent_cache") and not decodes:  # the VAE can stay on disk
      latent = latents.describe(config.model.vae_workdir)
    else:
      latent, frozen = latents.load(config.model.vae_workdir)
    if config.data.get("latent_cache"):
      latent_cache.check(config, latent.step)
    if config.model.channels != latent.channels:
      raise ValueError(f"model.channels={config.model.channels} but the VAE in "
                       f"{config.model.vae_workdir} has {latent.channels} latent channels")
    d = config.data
    patching.check_divisible(*latent.shape(d.frames, d.height, d.width)[:3], config.model.patch)
  cfg = step_lib.StepConfig.from_config(config, latent)
  return functools.partial(step_lib.diffusion_loss, cfg=cfg), frozen


def global_batch(run: Run, local_batch: dict) -> dict:
  """This process's share of the batch -> global arrays laid out on the mesh."""
  return {k: jax.make_array_from_process_local_data(run.batch_sharding[k], v)
          for k, v in local_batch.items()}


def save_config(config, workdir) -> None:
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "config.json"), "w", encoding="utf-8") as f:
    json.dump(config.to_dict(), f, indent=2)


def train(config, workdir, *, stop_at: int | None = None, progress: bool = True):
  """Trains to `train.steps` (or to `stop_at`, as a preemption would), resuming if possible.
  With `train.time_limit_minutes` it stops, checkpointed, at the first step past that much wall
  time since this call began: a demo or a shared machine gets a run that ends on time. With
  `train.fit_minutes` it sizes `train.steps` to what that many minutes hold (budget.py).

  Returns the final TrainState.
  """
  started = time.monotonic()
  deadline = time_limit_deadline(config.train.get("time_limit_minutes", 0.0))
  budget.check(config.train.get("fit_minutes", 0.0))
  run = setup(config, workdir)
  is_main = jax.process_index() == 0
  if is_main:
    save_config(run.config, workdir)
  writer = metrics.MetricWriter(workdir) if is_main else None
  try:
    with SigtermFlag() as sigterm:
      _loop(run, writer, sigterm, stop_at, progress and is_main, deadline, started)
  finally:
    run.ckpt.close()
    if writer:
      writer.close()
  if config.task == "vae" and is_main:
    # A frozen encoder keeps its source's latent space: its stats, verbatim, so latents (and
    # latent caches) of the source decode through this VAE unchanged.
    stats = (latents.stats_of(config.vae.init_from) if state_lib.frozen_modules(config)
             else vae_latent_stats(run))
    latents.save_stats(workdir, int(run.state.step), stats)
  return run.state


def vae_latent_stats(run: Run) -> dict:
  """Per-channel shift / scale of the EMA VAE's latent means over `vae.stats_batches` batches
  (a fresh, seeded stream: the checkpointed training iterator is left alone)."""
  config = run.config
  data = iter(pipeline.train_dataset(config.data, batch_size=config.train.batch_size,
                                     seed=config.seed + 1))
  model = nnx.merge(run.graphdef, run.state.ema_params)
  ft = config.vae.factors[0]
  encode = nnx.jit(lambda m, v: m.encode(vae_lib.pad_frames(v, ft)[0])[0])
  means = [np.asarray(encode(model, next(data)["video"])) for _ in range(config.vae.stats_batches)]
  return latents.channel_stats(np.concatenate(means))


def time_limit_deadline(minutes) -> float | None:
  """The time.monotonic() at which a run given `minutes` (train.time_limit_minutes) stops."""
  if not (isinstance(minutes, (int, float)) and math.isfinite(minutes) and minutes >= 0):
    raise ValueError(f"train.time_limit_minutes={minutes!r}; must be >= 0 (0: no limit)")
  return time.monotonic() + 60.0 * minutes if minutes else None


def out_of_time(deadline, done: int, log_every: int) -> bool:
  """Whether the run is past its deadline. Processes agree on process 0's clock, at logged steps
  only (a collective), so they all stop at the same step."""
  if deadline is None:
    return False
  if jax.process_count() == 1:
    return time.monotonic() >= deadline
  if done % log_every:
    return False
  return bool(multihost_utils.broadcast_one_to_all(np.asarray(time.monotonic() >= deadline)))


def _fitter(run: Run, start: int, started: float):
  """The run's StepFitter, or None when it trains `train.steps` as given or already fitted."""
  cfg = run.config.train
  if not cfg.get("fit_minutes", 0.0) or cfg.get("steps_fitted", False):
    return None
  fitter = budget.StepFitter(cfg, start, started)
  if fitter.window is None:
    tqdm.tqdm.write(f"train: no warmup left at step {start} to time; train.fit_minutes ignored, "
                    f"training to train.steps={cfg.steps}")
    return None
  return fitter


def _log(writer, bar, done: int, step_metrics, clock) -> tuple[float, int]:
  """Writes step `done`'s metrics with the steps/s since the last log; the new clock."""
  row = {k: float(v) for k, v in jax.device_get(step_metrics).items()}
  if not math.isfinite(row["loss"]):
    raise FloatingPointError(f"loss is {row['loss']} at step {done}; lower train.lr or check "
                             "the data")
  now = time.perf_counter()
  row["steps_per_sec"] = (done - clock[1]) / (now - clock[0])
  if writer:
    writer.write(done, row)
  bar.set_postfix(loss=f"{row['loss']:.4f}", steps_s=f"{row['steps_per_sec']:.2f}")
  return now, done


def _loop(run: Run, writer, sigterm: SigtermFlag, stop_at, show_progress: bool, deadline,
          started: float) -> None:
  start = int(run.state.step)
  end = run.config.train.steps if stop_at is None else min(stop_at, run.config.train.steps)
  fitter = _fitter(run, start, started)
  base_key = jax.random.key(run.config.seed)
  bar = tqdm.tqdm(total=run.config.train.steps, initial=start, disable=not show_progress,
                  unit="step", dynamic_ncols=True, desc="train")
  clock = (time.perf_counter(), start)  # (time, step) of the last log
  done = start
  while done < end:
    done += 1
    run.state, step_metrics = run.step_fn(run.state, global_batch(run, next(run.data)), base_key,
                                          run.frozen)
    bar.update(1)
    fitted = fitter.observe(done, run.state) if fitter else None
    if fitted is not None:
      fit_to(run, fitted)
      end, bar.total = min(end, fitted), fitted
      tqdm.tqdm.write(f"train: {fitted} steps fit train.fit_minutes={run.config.train.fit_minutes}"
                      f" at {fitter.steps_per_sec:.2f} steps/s")
    cfg = run.config.train
    timed_out = out_of_time(deadline, done, cfg.log_every)
    last = done == end or timed_out
    if done % cfg.log_every == 0 or last:
      clock = _log(writer, bar, done, step_metrics, clock)
    if done % cfg.checkpoint_every == 0 or last or sigterm.raised:
      run.ckpt.save(done, run.state, run.data, run.config.to_dict())
    if timed_out and done < end:
      tqdm.tqdm.write(f"train: stopped at step {done} of {cfg.steps}, past train."
                      f"time_limit_minutes={cfg.time_limit_minutes}; the same command resumes")
    if sigterm.raised or timed_out:
      break
  bar.close()
