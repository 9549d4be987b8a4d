"""Orbax checkpoints of a run: train state, Grain iterator state and the config, saved async.

Restore takes an abstract target that carries the current shardings, so a run written on one mesh
resumes on another. A crash during an async save leaves the previous step restorable.
"""

import os

import grain
import jax
import orbax.checkpoint as ocp

ITEMS = ("state", "data", "config")


class NoCheckpointError(ValueError):
  """The workdir holds no checkpoint to restore."""


def checkpoint_dir(workdir) -> str:
  return os.path.join(os.path.abspath(workdir), "checkpoints")


class Checkpointer:
  """A thin owner of an Orbax CheckpointManager with this project's three items."""

  def __init__(self, workdir, *, max_to_keep: int = 3, async_save: bool = True,
               create: bool = True):
    if not create and not os.path.isdir(checkpoint_dir(workdir)):
      raise NoCheckpointError(f"--workdir={workdir} holds no checkpoints/ folder: train there "
                              "first (sora-jax train --workdir=...)")
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, enable_async_checkpointing=async_save, create=create)
    self.manager = ocp.CheckpointManager(checkpoint_dir(workdir), item_names=ITEMS,
                                         options=options)

  def latest_step(self):
    return self.manager.latest_step()

  def _require(self, step) -> None:
    if step is None:
      raise NoCheckpointError(f"no checkpoint found in {self.manager.directory}: train there "
                              "first (sora-jax train --workdir=...)")

  def save(self, step: int, state, data_iterator, config_dict) -> None:
    """Starts an async save of `step` (the blocking part only copies arrays off the device)."""
    args = ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=grain.checkpoint.CheckpointSave(data_iterator),
        config=ocp.args.JsonSave(config_dict))
    self.manager.save(step, args=args, force=True)

  def restore(self, step, abstract_state, data_iterator=None):
    """The state at `step` placed by the shardings in `abstract_state`; the data iterator, if
    given, is moved to where that step left it."""
    self._require(step)
    items = {"state": ocp.args.StandardRestore(abstract_state)}
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    return self.manager.restore(step, args=ocp.args.Composite(**items)).state

  def restore_config(self, step=None) -> dict:
    """The config dict saved with `step` (default: latest)."""
    step = self.latest_step() if step is None else step
    self._require(step)
    return self.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))[
        "config"]

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


def abstract_with_shardings(abstract_tree, shardings):
  """ShapeDtypeStructs that carry target shardings: what `restore` places arrays by."""
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                      abstract_tree, shardings)
