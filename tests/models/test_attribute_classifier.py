"""The noise-aware attribute classifier: labels, likelihood, and that training teaches it."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from sora_jax.data import captions
from sora_jax.models import attribute_classifier as ac
from sora_jax.train import classifier


def test_labels_of_a_plain_prompt_and_of_two_objects():
  labels = ac.labels_of(captions.parse_prompt("a large blue square moves left"))
  assert labels == {"colour": ac.CLASSES["colour"].index("blue"),
                    "shape": ac.CLASSES["shape"].index("square"),
                    "size": ac.CLASSES["size"].index("large"),
                    "direction": ac.CLASSES["direction"].index("left")}
  two = captions.parse_prompt("a small red circle moves up and a large green square moves down")
  assert set(ac.labels_of(two).values()) == {-1}  # it classifies single objects only


def test_log_likelihood_against_log_softmax_and_skips_missing_labels():
  rng = np.random.default_rng(0)
  logits = {k: jnp.asarray(rng.normal(size=(3, len(v))), jnp.float32)
            for k, v in ac.CLASSES.items()}
  labels = {"shape": jnp.asarray([0, 2, -1]), "size": jnp.asarray([1, -1, 0])}
  got = ac.log_likelihood(logits, labels, {"shape": 2.0, "size": 1.0})
  ls = {k: np.asarray(jax.nn.log_softmax(v)) for k, v in logits.items()}
  want = [2 * ls["shape"][0, 0] + ls["size"][0, 1], 2 * ls["shape"][1, 2],
          ls["size"][2, 0]]
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_output_shapes():
  model = ac.AttributeClassifier(4, width=16, depth=1, rngs=nnx.Rngs(0))
  out = model(jnp.zeros((2, 3, 4, 4, 4)), jnp.asarray([0.1, 0.9]))
  assert {k: v.shape for k, v in out.items()} == {k: (2, len(v)) for k, v in ac.CLASSES.items()}


def test_training_learns_a_shape_that_the_latents_carry():
  """Latents whose sign pattern encodes the shape: a few hundred steps read it at low noise."""
  rng = np.random.default_rng(0)
  n = 256
  shape = rng.integers(0, 3, n).astype(np.int32)
  patterns = rng.choice([-1.0, 1.0], size=(3, 2, 4, 4, 4)).astype(np.float32)
  z = patterns[shape] + 0.1 * rng.normal(size=(n, 2, 4, 4, 4)).astype(np.float32)
  labels = {k: np.full(n, -1, np.int32) for k in ac.CLASSES}
  labels["shape"] = shape
  before = classifier.accuracy_by_time(
      ac.AttributeClassifier(4, width=16, depth=1, rngs=nnx.Rngs(0)), z, labels, [0.1],
      schedule="cosine", shift=1.0)[0.1]["shape"]
  model = classifier.train(z, labels, steps=150, batch=32, width=16, depth=1, log=None)
  acc = classifier.accuracy_by_time(model, z, labels, [0.1, 1.0], schedule="cosine", shift=1.0)
  assert acc[0.1]["shape"] > 0.95 > before
  assert acc[1.0]["shape"] < 0.6  # pure noise holds no shape
  assert set(acc[0.1]) == {"shape"}  # the attributes without labels are not scored
