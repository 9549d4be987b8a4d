"""Loading a config file and applying `--config.a.b=value` overrides, with clear errors.

A config file is a Python file with `get_config()` returning an ml_collections.ConfigDict. Variants
import `configs.default`, so the folder above the config's folder goes on sys.path.
"""

import ast
import importlib.util
import os
import sys

import ml_collections

from sora_jax.models import patching, precision
from sora_jax.train import budget, state


def load_file(path: str) -> ml_collections.ConfigDict:
  if not path.endswith(".py") or not os.path.isfile(path):
    raise ValueError(f"--config={path}: not a .py config file (e.g. configs/tiny_cpu.py)")
  root = os.path.dirname(os.path.dirname(os.path.abspath(path)))
  if root not in sys.path:
    sys.path.insert(0, root)
  spec = importlib.util.spec_from_file_location("_sora_jax_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ValueError(f"--config={path} defines no get_config()")
  return module.get_config()


def _parse(key: str, text: str, current):
  """`text` as a value of the same type as `current` (the default), or a ValueError."""
  if isinstance(current, bool):
    if text.lower() not in ("true", "false"):
      raise ValueError(f"--config.{key}={text}: expected true or false")
    return text.lower() == "true"
  if isinstance(current, str):
    return text
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    value = text
  if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)
  if isinstance(current, (tuple, list)) and isinstance(value, (tuple, list)):
    if current and len(value) != len(current):
      raise ValueError(f"--config.{key}={text}: expected {len(current)} values like {current}")
    return tuple(value)
  if current is not None and type(value) is not type(current):
    raise ValueError(f"--config.{key}={text}: expected a {type(current).__name__} "
                     f"like {current!r}")
  return value


def override(config: ml_collections.ConfigDict, key: str, text: str) -> None:
  """Sets config[a][b]... = text parsed to the type of the existing value."""
  *parents, leaf = key.split(".")
  node = config
  for i, name in enumerate(parents):
    if not isinstance(node, ml_collections.ConfigDict) or name not in node:
      raise ValueError(f"--config.{key}: unknown key {'.'.join(parents[:i + 1])!r}; known: "
                       f"{', '.join(sorted(node.keys()))}")
    node = node[name]
  if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
    known = ", ".join(sorted(node.keys())) if isinstance(node, ml_collections.ConfigDict) else ""
    raise ValueError(f"--config.{key}: unknown key; known at this level: {known}")
  if isinstance(node[leaf], ml_collections.ConfigDict):
    raise ValueError(f"--config.{key} is a group of keys, not a value")
  node[leaf] = _parse(key, text, node[leaf])


def load(path: str, overrides: list[str]) -> ml_collections.ConfigDict:
  """The config at `path` with overrides of the form `--config.a.b=value` applied."""
  config = load_file(path)
  for item in overrides:
    if not item.startswith("--config.") or "=" not in item:
      raise ValueError(f"unrecognised argument {item!r}; overrides look like --config.train.steps=10")
    key, text = item[len("--config."):].split("=", 1)
    override(config, key, text)
  validate(config)
  return config


def validate(config) -> None:
  """Cross-key checks a user can trip over before anything expensive runs."""
  t = config.train
  for name in ("steps", "batch_size", "log_every", "checkpoint_every"):
    if t[name] < 1:
      raise ValueError(f"train.{name}={t[name]}: must be >= 1")
  budget.check(t.get("fit_minutes", 0.0))
  state.task_of(config)  # raises on an unknown task
  m = config.model
  precision.check(m.get("matmul_dtype", "float32"))
  if m.width % m.num_heads:
    raise ValueError(f"model.width={m.width} is not divisible by model.num_heads={m.num_heads}")
  if config.task == "dit" and not m.vae_workdir:  # a latent DiT's grid is checked at setup
    patching.check_divisible(config.data.frames, config.data.height, config.data.width, m.patch)
