"""A trained workdir restored for use (sampling, or a frozen VAE under a DiT): config, weights.

A run can also be exported: its EMA parameters alone (no optimizer moments, no data state) as an
Orbax checkpoint next to its config. That is how the repository ships the trained VAE the demo's
DiT works in (assets/vae_tiny): an export reads anywhere a workdir is read for a trained model.
"""

import dataclasses
import json
import os
import shutil

import ml_collections
import orbax.checkpoint as ocp
from flax import nnx

from sora_jax.parallel import mesh as mesh_lib
from sora_jax.parallel import rules as rules_lib
from sora_jax.train import checkpoint, state as state_lib


@dataclasses.dataclass
class Trained:
  """A restored model: its config, graph and (EMA) parameters at checkpoint `step`."""
  config: ml_collections.ConfigDict
  graphdef: nnx.GraphDef
  params: nnx.State | None  # None from `describe`
  step: int


_HOW_TO_TRAIN = {"dit": "sora-jax train", "vae": "sora-jax train-vae"}


def _open(workdir, task: str, step: int | None):
  """(Checkpointer, step, config) of checkpoint `step` (default: the latest) of a `task` run."""
  ckpt = checkpoint.Checkpointer(workdir, create=False)
  try:
    if step is not None and step not in ckpt.manager.all_steps():
      raise checkpoint.NoCheckpointError(f"{workdir} has no checkpoint of step {step}; it has "
                                         f"{sorted(ckpt.manager.all_steps())}")
    step = ckpt.latest_step() if step is None else step
    config = ml_collections.ConfigDict(ckpt.restore_config(step))
    if state_lib.task_of(config) != task:
      raise ValueError(f"{workdir} holds a {config.task!r} run, not a {task!r} one (train one "
                       f"with `{_HOW_TO_TRAIN[task]}`)")
  except BaseException:
    ckpt.close()
    raise
  return ckpt, step, config


def _abstract(config):
  """(graphdef, abstract train state with its shardings) of a run's config."""
  mesh = mesh_lib.make_mesh(config.mesh)
  rules = rules_lib.as_rules(config.mesh.rules)
  tx = state_lib.optimizer(config)
  with rules_lib.activate(mesh, rules):
    graphdef, abstract = state_lib.abstract_state(config, tx)
    shardings = state_lib.state_shardings(abstract, tx, mesh, rules)
  return graphdef, checkpoint.abstract_with_shardings(abstract, shardings)


def load_trained(workdir, *, task: str, use_ema: bool | None = None,
                 step: int | None = None) -> Trained:
  """Restores checkpoint `step` (default: the latest) of `workdir`, which must hold a `task` run
  (raises NoCheckpointError if there is no such checkpoint), or the export in `workdir`.
  `use_ema`: the EMA parameters or the raw ones; None: the run's `sample.use_ema`."""
  if is_export(workdir):
    return _load_export(workdir, task, use_ema=use_ema is not False, step=step, read_params=True)
  ckpt, step, config = _open(workdir, task, step)
  try:
    if use_ema is None:
      use_ema = bool(config.get("sample", {}).get("use_ema", True))
    graphdef, abstract = _abstract(config)
    state = ckpt.restore(step, abstract)
  finally:
    ckpt.close()
  return Trained(config, graphdef, state.ema_params if use_ema else state.params, step)


def describe(workdir, *, task: str, step: int | None = None) -> Trained:
  """Like `load_trained` without reading any weights (params is None): config, graph and step."""
  if is_export(workdir):
    return _load_export(workdir, task, use_ema=True, step=step, read_params=False)
  ckpt, step, config = _open(workdir, task, step)
  ckpt.close()
  graphdef, _ = _abstract(config)
  return Trained(config, graphdef, None, step)


def task_of(workdir) -> str:
  """What the run in `workdir` trains ("dit" or "vae"), read from its latest checkpoint's config."""
  if is_export(workdir):
    return state_lib.task_of(_read_json(workdir, CONFIG_FILE))
  ckpt = checkpoint.Checkpointer(workdir, create=False)
  config = ckpt.restore_config(ckpt.latest_step())
  ckpt.close()
  return state_lib.task_of(config)


EXPORT_FILE, CONFIG_FILE, PARAMS_DIR = "export.json", "config.json", "params"
COPIED_FILES = ("latent_stats.json",)  # a VAE's latent statistics travel with its weights


def is_export(path) -> bool:
  return os.path.isfile(os.path.join(path, EXPORT_FILE))


def export(workdir, out, *, step: int | None = None) -> dict:
  """Writes the EMA parameters of `workdir`'s checkpoint `step` (default: the latest) to `out`
  (which must not exist yet) with the run's config; returns what export.json records."""
  if os.path.exists(out):
    raise ValueError(f"--out={out} exists; give a new folder (nothing is overwritten)")
  task = task_of(workdir)
  trained = load_trained(workdir, task=task, step=step)
  tmp = out.rstrip("/") + ".partial"
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  with ocp.StandardCheckpointer() as saver:
    saver.save(os.path.join(os.path.abspath(tmp), PARAMS_DIR), trained.params)
  meta = {"task": task, "step": trained.step, "source": os.path.abspath(workdir)}
  for name, obj in ((CONFIG_FILE, trained.config.to_dict()), (EXPORT_FILE, meta)):
    with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
      json.dump(obj, f, indent=2)
  for name in COPIED_FILES:
    if os.path.isfile(os.path.join(workdir, name)):
      shutil.copy(os.path.join(workdir, name), tmp)
  os.replace(tmp, out)  # appears whole or not at all
  return meta


def _read_json(path, name) -> dict:
  with open(os.path.join(path, name), encoding="utf-8") as f:
    return json.load(f)


def _load_export(path, task: str, *, use_ema: bool, step, read_params: bool) -> Trained:
  meta, config = _read_json(path, EXPORT_FILE), ml_collections.ConfigDict(
      _read_json(path, CONFIG_FILE))
  if meta["task"] != task:
    raise ValueError(f"{path} holds an exported {meta['task']!r} model, not a {task!r} one")
  if not use_ema or step not in (None, meta["step"]):
    raise ValueError(f"{path} is an export: it holds only the EMA parameters of step "
                     f"{meta['step']}")
  graphdef, abstract = _abstract(config)
  params = None
  if read_params:
    with ocp.StandardCheckpointer() as loader:
      params = loader.restore(os.path.join(os.path.abspath(path), PARAMS_DIR),
                              abstract.ema_params)
  return Trained(config, graphdef, params, meta["step"])
