"""Every shipped config loads, passes validation and sets only keys that configs/default.py has:
a typo such as `c.model.patchh = ...` would otherwise add a key that nothing reads."""

import glob
import os

import pytest

from sora_jax import configlib
from tests.conftest import ROOT

CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, "configs", "*.py"))
                 if not os.path.basename(p).startswith("__"))


def flat_keys(config, prefix=""):
  keys = set()
  for name, value in config.items():
    if hasattr(value, "items"):
      keys |= flat_keys(value, f"{prefix}{name}.")
    else:
      keys.add(prefix + name)
  return keys


def test_every_config_is_found():
  names = {os.path.basename(p) for p in CONFIGS}
  assert {"default.py", "tiny_cpu.py", "shapes_quality.py", "shapes_pixels.py",
          "shapes_latent.py"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_loads_with_only_default_keys(path):
  default = configlib.load_file(os.path.join(ROOT, "configs", "default.py"))
  config = configlib.load(path, [])
  assert flat_keys(config) - flat_keys(default) == set()


def test_flat_keys_catches_an_added_key():
  config = configlib.load_file(os.path.join(ROOT, "configs", "tiny_cpu.py"))
  config.model.patchh = (1, 2, 2)
  default = configlib.load_file(os.path.join(ROOT, "configs", "default.py"))
  assert flat_keys(config) - flat_keys(default) == {"model.patchh"}
