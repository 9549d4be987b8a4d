"""Sequence-parallel (Ulysses) self-attention agrees with full attention, alone and in training.

The multi-device runs happen in the 8-device `meshes` worker (tests/parallel/conftest.py) and are
compared with its 1-device reference; the head-count check needs no devices: an abstract mesh
traces it.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import default
from sora_jax.models import layers
from sora_jax.parallel import context
from sora_jax.parallel import rules as rules_lib
from tests.parallel import test_meshes as harness
from tests.parallel import workers


@pytest.mark.parametrize("mesh", list(workers.ATTENTION_MESHES))
def test_ulysses_attention_matches_full_attention(meshes, mesh):
  res = meshes[1]["context"][mesh]
  assert res["error"] <= harness.RTOL, res
  assert res["all_to_all"] == 4  # q, k, v to head shards, the output back to token shards


def test_ulysses_training_gives_the_one_device_losses_and_parameters(meshes, one_device):
  got, ref = meshes[1]["context"]["ulysses_training"], one_device[1]["reference"]
  assert got["step"] == ref["step"] == workers.STEPS
  np.testing.assert_allclose(got["losses"], ref["losses"], rtol=harness.RTOL)
  harness.assert_close_params(harness.load_params(meshes[0], "ulysses"),
                              harness.load_params(one_device[0], "reference"))
  # 4 per block forward (q, k, v, output) and their transposes backward: 2 blocks x 8.
  assert got["all_to_all"] == 8 * 2
  assert got["compiles"][1:] == [0] * (workers.STEPS - 1)


def abstract_call(fn, shape, **mesh):
  """Traces fn(q, q, q) for q of `shape` under an abstract mesh (no devices) and the rules."""
  sizes = tuple(mesh.get(a, 1) for a in ("data", "fsdp", "tensor", "sequence"))
  abstract = jax.sharding.AbstractMesh(sizes, ("data", "fsdp", "tensor", "sequence"))
  q = jax.ShapeDtypeStruct(shape, jnp.float32)
  rules = rules_lib.as_rules(default.get_config().mesh.rules)
  with jax.sharding.use_abstract_mesh(abstract), nn.logical_axis_rules(rules):
    return jax.eval_shape(fn, q, q, q)


@pytest.mark.parametrize("heads, mesh", [(2, dict(sequence=4)), (4, dict(tensor=2, sequence=4))])
def test_a_head_count_the_sequence_size_does_not_divide_is_rejected(heads, mesh):
  with pytest.raises(ValueError, match="heads per device .* not divisible by the sequence"):
    abstract_call(context.ulysses_attention, (2, 16, heads, 8), **mesh)


def test_heads_divisible_per_device_trace_and_no_sequence_axis_falls_back():
  out = abstract_call(context.ulysses_attention, (2, 16, 8, 8), tensor=2, sequence=4)
  assert out.shape == (2, 16, 8, 8)
  assert context.sequence_spec((2, 16, 2, 8)) is None  # no mesh, no rules: plain attention
  q = jnp.ones((1, 4, 2, 8))
  np.testing.assert_array_equal(context.ulysses_attention(q, q, q),
                                jax.nn.dot_product_attention(q, q, q))


def test_an_unknown_attention_is_rejected():
  with pytest.raises(ValueError, match="model.attention='ring'.*full, ulysses"):
    layers.Attention(8, 2, nnx.Rngs(0), impl="ring", dtype=jnp.float32, param_dtype=jnp.float32)
