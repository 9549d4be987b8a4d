"""Muon (train/muon.py) and `train.optimizer`: the orthogonalisation, which parameters it takes,
optimizer-state shardings under optax.partition; tests/train/test_train.py trains with it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from sora_jax.parallel import mesh as mesh_lib
from sora_jax.parallel import rules as rules_lib
from sora_jax.train import muon, state as state_lib


@pytest.mark.parametrize("shape", [(64, 256), (256, 64), (96, 96)])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_orthogonalize_pushes_every_singular_value_near_one(shape, dtype):
  """Singular values spread over 30x come out within modded-nanogpt's band (~0.7-1.2), and
  the singular vectors are kept: the result is close to U V^T of the SVD."""
  u, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(shape[0], shape[0])))
  v, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(shape[1], shape[1])))
  k = min(shape)
  s = np.geomspace(0.1, 3.0, k)
  g = (u[:, :k] * s) @ v[:, :k].T
  o = np.asarray(muon.orthogonalize(jnp.asarray(g, jnp.float32), 5, dtype))
  assert o.shape == shape and o.dtype == np.float32
  sv = np.linalg.svd(o, compute_uv=False)
  assert 0.6 < sv.min() and sv.max() < 1.25, (sv.min(), sv.max())
  polar = u[:, :k] @ v[:, :k].T
  assert np.linalg.norm(o - polar) / np.linalg.norm(polar) < 0.25
  atol = 1e-5 if dtype == jnp.float32 else 3e-2  # a square matrix iterates on X X^T or X^T X
  np.testing.assert_allclose(o, np.asarray(muon.orthogonalize(jnp.asarray(g.T), 5, dtype)).T,
                             atol=atol)


def test_muon_updates_are_rms_matched_to_adamw():
  """One step of scale_by_muon: each update has RMS ~0.2 whatever the matrix's shape."""
  params = {"a": jnp.ones((32, 128)), "b": jnp.ones((128, 128))}
  grads = jax.tree.map(lambda p: jax.random.normal(jax.random.key(p.shape[0]), p.shape), params)
  tx = muon.scale_by_muon()
  updates, _ = tx.update(grads, tx.init(params))
  for u in jax.tree.leaves(updates):
    assert 0.15 < float(jnp.sqrt(jnp.mean(u ** 2))) < 0.25


def test_muon_rejects_parameters_that_are_not_matrices():
  with pytest.raises(ValueError, match="2-D parameters only"):
    muon.scale_by_muon().init({"conv": jnp.zeros((3, 3, 4, 8))})


def test_hidden_matrices_go_to_muon_and_the_rest_to_adamw(config):
  model = state_lib.build_model(config)
  labels = state_lib.muon_labels(nnx.state(model, nnx.Param))
  flat = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_flatten_with_path(labels)[0]}
  assert flat["['blocks'][0]['mlp']['up']['kernel'].value"] == "muon"
  assert flat["['blocks'][1]['attn']['q']['kernel'].value"] == "muon"
  assert flat["['text']['blocks'][0]['mlp']['down']['kernel'].value"] == "muon"
  for path in ("['patch_embed']['kernel'].value", "['final']['kernel'].value",
               "['blocks'][0]['mlp']['up']['bias'].value", "['text']['embed']['embedding'].value"):
    assert flat[path] == "adamw", path
  assert set(flat.values()) == {"muon", "adamw"}


@pytest.mark.parametrize("key,value,message", [
    ("optimizer", "sgd", "train.optimizer='sgd'; allowed: adamw, muon"),
    ("muon_ns_dtype", "float16", "train.muon_ns_dtype='float16'; allowed: float32, bfloat16")])
def test_unknown_optimizer_settings_are_rejected(config, key, value, message):
  config.train.optimizer = "muon"
  config.train[key] = value
  with pytest.raises(ValueError, match=message):
    state_lib.optimizer(config)


def test_each_optimizer_moment_is_sharded_like_its_parameter(config):
  """Under optax.partition each half's state holds only its own parameters (the rest masked);
  their moments still take the parameter's sharding, and the counters are replicated."""
  config.train.optimizer = "muon"
  mesh, rules = mesh_lib.make_mesh(config.mesh), rules_lib.as_rules(config.mesh.rules)
  tx = state_lib.optimizer(config)
  with rules_lib.activate(mesh, rules):
    _, abstract = state_lib.abstract_state(config, tx)
    sh = state_lib.state_shardings(abstract, tx, mesh, rules)
  param_specs = {jax.tree_util.keystr(k): s.spec
                 for k, s in jax.tree_util.tree_flatten_with_path(sh.params)[0]}
  moments = 0
  for path, s in jax.tree_util.tree_flatten_with_path(sh.opt_state)[0]:
    key = jax.tree_util.keystr(path)
    owner = [p for p in param_specs if key.endswith(p)]
    if owner:
      moments += 1
      assert s.spec == param_specs[max(owner, key=len)], key
    else:
      assert s.spec == jax.sharding.PartitionSpec(), key
  up = "['blocks'][0]['mlp']['up']['kernel'].value"
  assert any(s.spec == param_specs[up] for p, s in jax.tree_util.tree_flatten_with_path(
      sh.opt_state)[0] if jax.tree_util.keystr(p).endswith("['mu']" + up))
  assert param_specs[up] != jax.sharding.PartitionSpec()  # the check above is not vacuous
  n_params = len(param_specs)
  n_muon = sum(v == "muon" for v in jax.tree.leaves(state_lib.muon_labels(abstract.params)))
  assert moments == n_muon + 2 * (n_params - n_muon)  # Muon: one moment; AdamW: two
