import jax.numpy as jnp
import numpy as np
import pytest

from configs import shapes_quality
from sora_jax.diffusion import objectives
from sora_jax.train import step as step_lib


def clip_with_object():
  """[1, 2, 8, 8, 4]: a flat background code, a 2 x 3 object in frame 0 and 3 x 3 in frame 1."""
  x0 = np.tile(np.array([0.3, -0.2, 0.1, 0.0], np.float32), (1, 2, 8, 8, 1))
  x0[0, 0, 2:4, 5:8] = [2.0, 1.0, -1.5, 0.5]
  x0[0, 1, 4:7, 1:4] = [-1.0, 2.5, 0.5, 1.0]
  return jnp.asarray(x0)


@pytest.mark.parametrize("boost", [1.0, 3.0])
def test_object_positions_count_one_plus_boost_times_the_background(boost):
  x0 = clip_with_object()
  w = np.asarray(objectives.object_weights(x0, boost, threshold=0.5))[..., 0]
  np.testing.assert_allclose(w.mean(axis=(2, 3)), 1.0, rtol=1e-6)  # each frame averages 1
  for frame, area in ((0, 6), (1, 9)):
    obj = np.abs(np.asarray(x0[0, frame, ..., 0]) - 0.3) > 0
    assert obj.sum() == area
    bg = 1.0 / (1.0 + boost * area / 64)
    np.testing.assert_allclose(w[0, frame][obj], (1.0 + boost) * bg, rtol=1e-6)
    np.testing.assert_allclose(w[0, frame][~obj], bg, rtol=1e-6)


def test_no_boost_or_no_object_weighs_every_position_alike():
  np.testing.assert_allclose(objectives.object_weights(clip_with_object(), 0.0, 0.5), 1.0)
  flat = jnp.full((2, 3, 4, 4, 2), 0.7)
  np.testing.assert_allclose(objectives.object_weights(flat, 3.0, 0.5), 1.0)


@pytest.mark.parametrize("key,value", [("object_weight", -1.0), ("object_threshold", 0.0)])
def test_bad_object_weighting_rejected_with_its_key(key, value):
  config = shapes_quality.get_config()
  config.diffusion[key] = value
  with pytest.raises(ValueError, match=f"diffusion.{key}"):
    step_lib.StepConfig.from_config(config)
