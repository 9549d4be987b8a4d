"""The train state as a pure pytree, the optimizer, and sharded creation on a mesh.

State is created under `jax.eval_shape` first, its shardings derived from the logical axis names
the model declares, and then materialised by a jitted init with those out_shardings, so full-size
parameters never exist unsharded on one device.
"""

import flax
import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from sora_jax.models.dit import VideoDiT
from sora_jax.models.vae import VideoVAE
from sora_jax.parallel import rules as rules_lib
from sora_jax.train import muon as muon_lib


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: nnx.State
  opt_state: optax.OptState
  ema_params: nnx.State


def learning_rate(train_cfg) -> optax.Schedule:
  """Linear warmup to `lr`, then cosine decay to `lr * min_lr_ratio` at `train.steps`."""
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=train_cfg.lr,
      warmup_steps=min(train_cfg.warmup_steps, train_cfg.steps - 1),
      decay_steps=train_cfg.steps, end_value=train_cfg.lr * train_cfg.min_lr_ratio)


OPTIMIZERS = ("adamw", "muon")
MUON_NS_DTYPES = ("float32", "bfloat16")
# Muon's edge layers: the patch embedding reads pixels or latents and the final layer writes them;
# like embedding tables they stay on AdamW (Jordan et al. 2024 keep the first and last layer off).
MUON_SKIPS = ("patch_embed", "final")


def muon_labels(params):
  """'muon' for the hidden matrices (2-D `kernel`s outside MUON_SKIPS), 'adamw' for the rest:
  biases, norms, gains, embedding tables, the edge layers and any conv kernel."""
  def label(path, p):
    names = [getattr(k, "key", None) for k in path]  # dict keys; None for list indices
    hidden = p.ndim == 2 and "kernel" in names and names[0] not in MUON_SKIPS
    return "muon" if hidden else "adamw"
  return jax.tree_util.tree_map_with_path(label, params)


def _adamw(train_cfg) -> optax.GradientTransformation:
  """AdamW without weight decay on biases, norms and gains (ndim < 2)."""
  decay_mask = lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)
  return optax.adamw(learning_rate(train_cfg), b1=0.9, b2=train_cfg.b2,
                     weight_decay=train_cfg.weight_decay, mask=decay_mask)


def _muon(train_cfg) -> optax.GradientTransformation:
  """Muon (train/muon.py) on the hidden matrices, AdamW on the rest, one schedule: Muon's
  updates are RMS-matched to AdamW's, so `train.lr` and `train.weight_decay` carry over."""
  ns_dtype = train_cfg.get("muon_ns_dtype", "float32")
  if ns_dtype not in MUON_NS_DTYPES:
    raise ValueError(f"train.muon_ns_dtype={ns_dtype!r}; allowed: {', '.join(MUON_NS_DTYPES)}")
  hidden = muon_lib.muon(learning_rate(train_cfg), train_cfg.weight_decay,
                         ns_dtype=jnp.dtype(ns_dtype))
  return optax.partition({"muon": hidden, "adamw": _adamw(train_cfg)}, muon_labels)


def make_optimizer(train_cfg, frozen: tuple = ()) -> optax.GradientTransformation:
  """`train.optimizer` (AdamW, or Muon on the hidden matrices) after global-norm clipping.

  Parameters under the top-level modules named in `frozen` get zero updates (weight decay
  included), so they stay bit-identical to where they started.
  """
  name = train_cfg.get("optimizer", "adamw")
  if name not in OPTIMIZERS:
    raise ValueError(f"train.optimizer={name!r}; allowed: {', '.join(OPTIMIZERS)}")
  core = _muon(train_cfg) if name == "muon" else _adamw(train_cfg)
  parts = [optax.clip_by_global_norm(train_cfg.grad_clip), core]
  if frozen:
    in_frozen = lambda params: jax.tree_util.tree_map_with_path(
        lambda path, _: getattr(path[0], "key", None) in frozen, params)
    parts.append(optax.masked(optax.set_to_zero(), in_frozen))
  return optax.chain(*parts)


VAE_PARTS = {"all": (), "decoder": ("encoder",)}  # vae.train_parts -> the modules left frozen


def frozen_modules(config) -> tuple:
  """Top-level modules `config` trains with zero updates: the encoder of a decoder-only VAE run."""
  if task_of(config) != "vae":
    return ()
  parts = config.vae.get("train_parts", "all")
  if parts not in VAE_PARTS:
    raise ValueError(f"vae.train_parts={parts!r}; allowed: {', '.join(VAE_PARTS)}")
  return VAE_PARTS[parts]


def optimizer(config) -> optax.GradientTransformation:
  """The optimizer of a run's config (what checkpoints of that run hold the state of)."""
  return make_optimizer(config.train, frozen_modules(config))


TASKS = ("dit", "vae")


def task_of(config) -> str:
  """What `config` trains, checked: "dit" (the text-to-video DiT) or "vae" (the video VAE)."""
  task = config.get("task", "dit")  # checkpoints from before the key are DiTs
  if task not in TASKS:
    raise ValueError(f"task={task!r}; allowed: {', '.join(TASKS)}")
  return task


def build_model(config) -> nnx.Module:
  """The model `config.task` trains: the text-to-video DiT, or the video VAE."""
  if task_of(config) == "vae":
    return VideoVAE(config.vae, rngs=nnx.Rngs(config.seed))
  return VideoDiT(config.model, text_len=config.data.text_len + 1, rngs=nnx.Rngs(config.seed))


def _init(config, tx) -> tuple[nnx.GraphDef, TrainState]:
  model = build_model(config)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  if rest:
    raise ValueError(f"the model holds non-parameter state, which TrainState does not carry: "
                     f"{rest}")
  state = TrainState(step=jnp.zeros((), jnp.int32), params=params,
                     opt_state=tx.init(params), ema_params=jax.tree.map(jnp.copy, params))
  return graphdef, state


def state_shardings(abstract: TrainState, tx, mesh, rules) -> TrainState:
  """NamedShardings of every leaf: params and EMA by their logical names, and each optimizer
  moment like the parameter it belongs to; counters replicated."""
  # Logical names, read with no rules active: under `rules_lib.activate` (where callers run this)
  # get_partition_spec already maps them to mesh axes, and mapping those again gives None.
  with nn.logical_axis_rules(()):
    logical = nnx.get_partition_spec(abstract.params)
  param_sh = rules_lib.logical_to_sharding(logical, mesh, rules)
  repl = rules_lib.replicated(mesh)
  opt_sh = _moment_shardings(abstract.opt_state, abstract.params, param_sh, repl)
  return TrainState(step=repl, params=param_sh, opt_state=opt_sh, ema_params=param_sh)


def _moment_shardings(opt_state, params, param_sh, repl):
  """Each optimizer-state leaf sharded like the parameter whose key path ends its own path
  (`...mu['blocks'][0]['mlp']['up']['kernel']` is that kernel's moment) and of its shape;
  counters and anything else replicated. Unlike optax.tree_map_params this reads states that
  optax.partition masks (Muon's and AdamW's halves each hold only their own parameters)."""
  by_path = {tuple(path): (leaf.shape, sh) for (path, leaf), sh in zip(
      jax.tree_util.tree_flatten_with_path(params)[0], jax.tree.leaves(param_sh))}
  lengths = sorted({len(p) for p in by_path}, reverse=True)

  def sharding(path, leaf):
    for n in lengths:
      shape, sh = by_path.get(tuple(path[-n:]), (None, None))
      if sh is not None and shape == leaf.shape:
        return sh
    return repl
  return jax.tree_util.tree_map_with_path(sharding, opt_state)


def abstract_state(config, tx):
  """(graphdef, TrainState of ShapeDtypeStructs) without allocating anything."""
  graphdef = None

  def init():
    nonlocal graphdef
    graphdef, state = _init(config, tx)
    return state

  abstract = jax.eval_shape(init)
  return graphdef, abstract


def create_state(config, mesh, rules, tx):
  """(graphdef, TrainState, shardings): the state materialised directly in its shardings."""
  graphdef, abstract = abstract_state(config, tx)
  shardings = state_shardings(abstract, tx, mesh, rules)
  state = jax.jit(lambda: _init(config, tx)[1], out_shardings=shardings)()
  return graphdef, state, shardings
