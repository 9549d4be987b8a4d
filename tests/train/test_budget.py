"""train.fit_minutes: a run sized to a wall-clock budget is a plain run of the steps it fitted."""

import contextlib
import json

import jax
import ml_collections
import numpy as np
import pytest

from sora_jax.train import budget, loop

ENOUGH = 60.0  # minutes: a tiny run's every step fits
NONE = 1e-9  # minutes: gone by the time the steps are timed


def train_cfg(steps=1000, warmup=100):
  return ml_collections.ConfigDict({"steps": steps, "warmup_steps": warmup, "fit_minutes": 1.0})


def test_fitted_steps_are_what_the_time_pays_for_within_bounds():
  cfg = train_cfg()
  assert budget.fitted_steps(10.0, 30.0, 50, cfg) == 350
  assert budget.fitted_steps(10.0, 1e6, 50, cfg) == 1000  # at most the config's steps
  assert budget.fitted_steps(10.0, -5.0, 50, cfg) == 101  # at least one step past the warmup
  assert budget.fitted_steps(10.0, 0.0, 150, train_cfg(warmup=100)) == 150  # never below `done`


def test_the_timed_window_sits_inside_the_warmup_past_the_compiling_step():
  assert budget.timed_window(train_cfg(warmup=100), start=0) == (10, 50)
  assert budget.timed_window(train_cfg(warmup=30), start=0) == (6, 30)
  assert budget.timed_window(train_cfg(warmup=2), start=0) == (1, 2)
  assert budget.timed_window(train_cfg(warmup=100), start=80) == (84, 100)  # resumed unfitted
  assert budget.timed_window(train_cfg(warmup=100), start=99) is None  # nothing left to time


@pytest.mark.parametrize("minutes", [-1.0, float("nan"), "10"])
def test_fit_minutes_is_checked(minutes):
  with pytest.raises(ValueError, match="fit_minutes"):
    budget.check(minutes)


@contextlib.contextmanager
def optimised_compiles():
  """Real runs compile optimised; the suite compiles at -O0 (tests/conftest.py), where two
  programs that differ only in the schedule's constants round the same gradients differently.
  Bit-identity between a fitted and a plain run is a claim about the optimised build."""
  before = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", False)
  try:
    yield
  finally:
    jax.config.update("jax_disable_most_optimizations", before)


@pytest.fixture
def optimised():
  with optimised_compiles():
    yield


@pytest.fixture(scope="module")
def plain_three(tmp_path_factory, data_dir):
  """The final state of a plain run of the tiny config given train.steps = 3."""
  from tests.conftest import tiny_config
  config = tiny_config(data_dir)
  config.train.steps = 3
  with optimised_compiles():
    return loop.train(config, str(tmp_path_factory.mktemp("plain3")), progress=False)


def assert_same(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def saved_train(workdir):
  with open(workdir / "config.json", encoding="utf-8") as f:
    return json.load(f)["train"]


def test_a_run_given_no_time_trains_one_step_past_the_warmup_as_a_plain_run(config, tmp_path,
                                                                            plain_three, optimised):
  """The tiny config warms up for 2 steps of at most 6: it times step 2 and fits 3 steps."""
  config.train.fit_minutes = NONE
  fitted = loop.train(config, str(tmp_path / "fit"), progress=False)
  assert int(fitted.step) == 3
  assert saved_train(tmp_path / "fit")["steps"] == 3
  assert saved_train(tmp_path / "fit")["steps_fitted"]
  assert_same(fitted, plain_three)


def test_a_fitted_run_resumes_to_the_steps_it_fitted(config, tmp_path, plain_three, optimised):
  """Stopped right after its fit, then called with a budget that would now fit all 6 steps: it
  keeps its checkpoint's 3 and ends as the plain 3-step run."""
  config.train.fit_minutes = NONE
  assert int(loop.train(config, str(tmp_path / "r"), stop_at=2, progress=False).step) == 2
  config.train.fit_minutes = ENOUGH
  resumed = loop.train(config, str(tmp_path / "r"), progress=False)
  assert int(resumed.step) == 3 and saved_train(tmp_path / "r")["steps"] == 3
  assert_same(resumed, plain_three)


def test_a_run_given_ample_time_trains_the_steps_given(config, tmp_path):
  config.train.fit_minutes = ENOUGH
  assert int(loop.train(config, str(tmp_path / "ample"), progress=False).step) == 6
  assert saved_train(tmp_path / "ample")["steps"] == 6
