"""Sizing a run to a wall-clock budget: `train.fit_minutes`.

A time limit alone cuts a cosine schedule short, and the run ends at a high learning rate with a
model worse than a shorter schedule run to its end. A fitted run instead times its own steps
inside the warmup (whose learning rate does not depend on the total), sets `train.steps` to what
the rest of the budget pays for on this machine (at most the config's `train.steps`, at least one
step past the warmup), and goes on with the schedule decaying to its floor at that last step. So
a fitted run is bit-identical to one given the fitted `train.steps` outright; the fitted value is
saved with the config and every checkpoint, and a resumed run keeps it instead of fitting again.
"""

import math
import time

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

MAX_TIMED_STEPS = 50  # a window of at most this many steps; shorter if the warmup is


def check(minutes) -> float:
  if not (isinstance(minutes, (int, float)) and math.isfinite(minutes) and minutes >= 0):
    raise ValueError(f"train.fit_minutes={minutes!r}; must be >= 0 (0: train.steps as given)")
  return float(minutes)


def timed_window(train_cfg, start: int) -> tuple[int, int] | None:
  """(first, last) for a call starting at step `start`: the steps after `first` up to `last` are
  timed, all inside the warmup and past the call's first step, which compiles. None when the
  warmup left is too short to time (then the run trains the config's train.steps)."""
  last = start + min(train_cfg.warmup_steps - start, MAX_TIMED_STEPS)
  first = start + max(1, (last - start) // 5)
  return (first, last) if last > first else None


def fitted_steps(steps_per_sec: float, seconds_left: float, done: int, train_cfg) -> int:
  """Steps a run at `done` reaches in `seconds_left` more, between one past the warmup (shorter
  would change the warmup the timed steps ran under) and the config's `train.steps`."""
  more = math.floor(steps_per_sec * max(seconds_left, 0.0))
  least = max(done, train_cfg.warmup_steps + 1)
  return min(train_cfg.steps, max(least, done + more))


def with_steps(config, steps: int) -> ml_collections.ConfigDict:
  """A copy of `config` fitted to train `steps` steps."""
  config = ml_collections.ConfigDict(config.to_dict())
  config.train.steps = int(steps)
  config.train.steps_fitted = True
  return config


def resumed(config, saved: dict) -> ml_collections.ConfigDict:
  """The config a run asking for a fit resumes with, given its checkpoint's config `saved`: a
  fitted run keeps the steps it was fitted to; one stopped before its fit fits again."""
  if saved["train"].get("steps_fitted"):
    return with_steps(config, saved["train"]["steps"])
  return config


class StepFitter:
  """Times the steps of `timed_window` and, at its last, says how many steps the budget holds:
  `fit_minutes` counted from `start_time` (time.monotonic()), the start of the `train` call."""

  def __init__(self, train_cfg, start: int, start_time: float):
    self.train_cfg = train_cfg
    self.deadline = start_time + 60.0 * check(train_cfg.fit_minutes)
    self.window = timed_window(train_cfg, start)
    self._t0 = None
    self.steps_per_sec = None

  def observe(self, done: int, state) -> int | None:
    """Called after each step; the fitted train.steps at the window's last step, else None."""
    if self.window is None or done not in self.window:
      return None
    first, last = self.window
    jax.block_until_ready(state)
    now = time.monotonic()
    if done == first:
      self._t0 = now
      return None
    self.steps_per_sec = (last - first) / (now - self._t0)
    steps = fitted_steps(self.steps_per_sec, self.deadline - now, done, self.train_cfg)
    if jax.process_count() > 1:  # every process trains process 0's count
      steps = int(multihost_utils.broadcast_one_to_all(np.asarray(steps, np.int64)))
    return steps
