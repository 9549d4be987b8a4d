"""Logical axis names -> mesh shardings. Models name axes; config maps names to mesh axes."""

import contextlib

import flax.linen as nn
import jax
from jax.sharding import NamedSharding, PartitionSpec as P


def as_rules(rules_cfg) -> tuple:
  """Config rules (lists from JSON or tuples) as the tuple-of-pairs flax expects."""
  out = []
  for name, axes in rules_cfg:
    out.append((name, tuple(axes) if isinstance(axes, (list, tuple)) else axes))
  return tuple(out)


@contextlib.contextmanager
def activate(mesh, rules):
  """Makes `mesh` and `rules` current, so `constrain` and model creation see them."""
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    yield


@contextlib.contextmanager
def activate_in_trace(mesh, rules):
  """`activate` for the body of a jitted function, where `jax.set_mesh` is not allowed: without
  it, `constrain` is a no-op there and activations (e.g. tokens over `sequence`) go unsharded."""
  with jax.sharding.use_abstract_mesh(mesh.abstract_mesh), nn.logical_axis_rules(rules):
    yield


def logical_to_sharding(logical_tree, mesh, rules):
  """A tree of logical PartitionSpecs -> a tree of NamedShardings on `mesh`."""
  return nn.logical_to_mesh_sharding(logical_tree, mesh, rules)


def named(mesh, rules, logical_axes) -> NamedSharding:
  """The NamedSharding of an array whose axes carry `logical_axes` names."""
  return NamedSharding(mesh, nn.logical_to_mesh_axes(logical_axes, rules))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def constrain(x, logical_axes):
  """Constrains an activation's sharding by logical names; a no-op outside a mesh."""
  rules = nn.get_logical_axis_rules()
  mesh = jax.sharding.get_abstract_mesh()
  if not rules or mesh.empty:
    return x
  spec = nn.logical_to_mesh_axes(logical_axes, rules)
  return jax.lax.with_sharding_constraint(x, spec)


def constrain_embed_side(x):
  """x [B, ..., D] at a layer's edge: batch on `batch`, features on `embed`, the middle axes left
  to propagation (sequence sharding survives). A no-op outside a mesh.

  Works around a jax/jaxlib 0.10.2 SPMD partitioner bug (tests/parallel/xla_mesh_bug.py): a
  matmul whose input has its batch over two mesh axes and its contraction over `tensor`, with a
  (tensor, fsdp) kernel and a (batch, tensor) output, returns rows on the wrong devices (wrong
  numbers on data=2 x fsdp=2 x tensor=2). Pinning the edges of every Mlp and Attention keeps
  (batch, tensor) off row-parallel outputs, and (its transpose) off column-parallel input
  gradients; on the meshes it affects it resolves to the layout the block ends on anyway.
  """
  rules = nn.get_logical_axis_rules()
  if not rules or jax.sharding.get_abstract_mesh().empty:
    return x
  batch, embed = nn.logical_to_mesh_axes(("batch", "embed"), rules)
  return jax.lax.with_sharding_constraint(x, P(batch, *(P.UNCONSTRAINED,) * (x.ndim - 2), embed))
