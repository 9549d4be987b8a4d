"""Shared fixtures: a tiny config and a shapes data set built once per test session."""

import atexit
import os
import shutil
import sys
import tempfile

import pytest
from absl import flags


# Compile settings of every JAX process the suite starts (see _fast_compiles).
FAST_COMPILE_ENV = {"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                    "JAX_DISABLE_MOST_OPTIMIZATIONS": "true"}
FAST_XLA_FLAGS = "--xla_cpu_use_fusion_emitters=false"


def _fast_compiles() -> None:
  """Before JAX starts: a persistent compilation cache shared by every test (and the CLI
  subprocesses, which inherit the environment), LLVM at -O0 and XLA's older CPU loop emitters.

  Tests compile far more than they run: the same tiny train step is compiled by a dozen
  loop.train calls. Measured on tests/train/test_train.py (2 cores): 119 s -> 56 s. Results differ
  from an optimised build only by float reassociation; every comparison inside the suite is
  between runs compiled the same way."""
  if "JAX_COMPILATION_CACHE_DIR" not in os.environ:  # xdist workers inherit the controller's
    cache = tempfile.mkdtemp(prefix="sora_jax_test_jit_cache_")
    atexit.register(shutil.rmtree, cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = cache
  for name, value in FAST_COMPILE_ENV.items():
    os.environ.setdefault(name, value)
  flags_ = os.environ.get("XLA_FLAGS", "")
  if "xla_cpu_use_fusion_emitters" not in flags_:
    os.environ["XLA_FLAGS"] = f"{flags_} {FAST_XLA_FLAGS}".strip()


_fast_compiles()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # so tests can import configs/
flags.FLAGS.mark_as_parsed()  # Grain reads absl flags; pytest never parses them


def tiny_config(data_dir):
  """A model and data set small enough for a train step in well under a second on CPU."""
  from configs import default
  c = default.get_config()
  c.data.data_dir = str(data_dir)
  c.data.frames, c.data.height, c.data.width = 4, 16, 16
  c.data.num_train, c.data.num_test = 32, 8
  c.data.text_len = 32
  c.model.width, c.model.depth, c.model.num_heads = 48, 2, 2
  c.model.patch = (2, 8, 8)
  c.model.text_width, c.model.text_depth, c.model.text_heads = 32, 1, 2
  c.diffusion.independent_time_prob = 0.5  # the train and resume tests cover per-frame times
  c.train.steps, c.train.batch_size = 6, 4
  c.train.lr, c.train.warmup_steps = 1e-3, 2
  c.train.log_every, c.train.checkpoint_every = 2, 3
  c.sample.steps = 4
  c.eval.num_prompts = 2
  return c


def tiny_data_config(data_dir, num_train=24):
  """Data settings alone: 8 frames of 16 x 16, up to two objects."""
  import ml_collections
  c = ml_collections.ConfigDict()
  c.name, c.data_dir = "shapes", str(data_dir)
  c.frames, c.height, c.width = 8, 16, 16
  c.num_train, c.num_test = num_train, 8
  c.max_objects, c.text_len, c.num_workers = 2, 32, 0
  return c


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items):
  """Under `pytest -n 2`, one worker runs all of tests/parallel: its session fixtures (the
  8-device mesh runs) then run once, not once per worker. The group goes first, so the other
  worker takes the rest meanwhile instead of idling at the end."""
  in_parallel = lambda item: f"{os.sep}tests{os.sep}parallel{os.sep}" in str(item.path)
  for item in items:
    if in_parallel(item):
      item.add_marker(pytest.mark.xdist_group("parallel"))
  items.sort(key=lambda item: not in_parallel(item))  # stable: each part keeps its order


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  """A data dir holding the tiny shapes data set (built on first use)."""
  path = tmp_path_factory.mktemp("tfds")
  from sora_jax.data import shapes
  shapes.build(tiny_config(path).data)
  return path


@pytest.fixture
def config(data_dir):
  return tiny_config(data_dir)
