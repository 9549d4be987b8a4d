"""A trained workdir restored for use (sampling, or a frozen VAE under a DiT): config, weights."""

import dataclasses

import ml_collections
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
  tx = state_lib.make_optimizer(config.train)
  with rules_lib.activate(mesh, rules):
    graphdef, abstract = state_lib.abstract_state(config, tx)
    shardings = state_lib.state_shardings(abstract, tx, mesh, rules)
  return graphdef, checkpoint.abstract_with_shardings(abstract, shardings)


def load_trained(workdir, *, task: str, use_ema: bool = True, step: int | None = None) -> Trained:
  """Restores checkpoint `step` (default: the latest) of `workdir`, which must hold a `task` run
  (raises NoCheckpointError if there is no such checkpoint)."""
  ckpt, step, config = _open(workdir, task, step)
  try:
    graphdef, abstract = _abstract(config)
    state = ckpt.restore(step, abstract)
  finally:
    ckpt.close()
  return Trained(config, graphdef, state.ema_params if use_ema else state.params, step)


def describe(workdir, *, task: str, step: int | None = None) -> Trained:
  """Like `load_trained` without reading any weights (params is None): config, graph and step."""
  ckpt, step, config = _open(workdir, task, step)
  ckpt.close()
  graphdef, _ = _abstract(config)
  return Trained(config, graphdef, None, step)


def task_of(workdir) -> str:
  """What the run in `workdir` trains ("dit" or "vae"), read from its latest checkpoint's config."""
  ckpt = checkpoint.Checkpointer(workdir, create=False)
  config = ckpt.restore_config(ckpt.latest_step())
  ckpt.close()
  return state_lib.task_of(config)
