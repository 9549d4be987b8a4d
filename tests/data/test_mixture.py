"""Tests of the shape mixture: clips repeated within an epoch by the shapes they show."""

import collections
import itertools

import ml_collections
import numpy as np
import pytest

from sora_jax.data import mixture
from sora_jax.data import pipeline
from sora_jax.data import shapes
from sora_jax.data import world
from tests.conftest import tiny_data_config

REPEATS = (1, 3, 2)  # circle, square, triangle


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
  c = tiny_data_config(tmp_path_factory.mktemp("tfds"), num_train=40)  # one or two objects
  shapes.build(c)
  return c


def expected_counts(cfg, repeats) -> list[int]:
  """From the stored ground truth, not the captions: the largest count among a clip's shapes."""
  examples = pipeline.eval_examples(cfg, "train")
  return [max(repeats[world.SHAPES.index(o["shape"])] for o in e["objects"]) for e in examples]


def with_repeats(cfg, repeats):
  c = ml_collections.ConfigDict(cfg.to_dict())
  c.shape_repeats = repeats
  return c


def test_each_clip_is_listed_by_its_shapes(cfg):
  source = pipeline.data_source(cfg, "train")
  repeated = mixture.RepeatedSource(source, lambda e: e, REPEATS)
  want = expected_counts(cfg, REPEATS)
  assert len(set(want)) == 3  # the data set shows every count, so the test can tell them apart
  assert collections.Counter(repeated.indices.tolist()) == dict(enumerate(want))
  assert len(repeated) == sum(want) and (np.diff(repeated.indices) >= 0).all()
  np.testing.assert_array_equal(repeated[1]["video"], source[int(repeated.indices[1])]["video"])


def test_one_epoch_of_the_pipeline_holds_the_mixture(cfg):
  """Batches of one clip over exactly one epoch: each clip comes as often as its shapes say."""
  want = expected_counts(cfg, REPEATS)
  videos = [np.asarray(e["video"]) for e in pipeline.eval_examples(cfg, "train")]
  key = lambda v: pipeline.to_unit_range(v).tobytes()
  index_of = {key(v): i for i, v in enumerate(videos)}
  it = pipeline.train_dataset(with_repeats(cfg, REPEATS), batch_size=1, seed=5)
  seen = collections.Counter(index_of[b["video"][0].tobytes()]
                             for b in itertools.islice(iter(it), sum(want)))
  assert seen == dict(enumerate(want))


def test_equal_counts_keep_the_plain_data_order(cfg):
  assert mixture.check_repeats((1, 1, 1)) is None and mixture.check_repeats(()) is None
  first = lambda c: [b["text"] for b in itertools.islice(
      iter(pipeline.train_dataset(c, batch_size=4, seed=2)), 3)]
  plain = first(cfg)
  np.testing.assert_array_equal(first(with_repeats(cfg, (1, 1, 1))), plain)
  assert not all(np.array_equal(a, b) for a, b in zip(first(with_repeats(cfg, REPEATS)), plain))


def test_bad_counts_are_rejected(cfg):
  for bad in [(1, 2), (0, 1, 1), (1.5, 1, 1), (True, 1, 1), (1, -2, 1)]:
    with pytest.raises(ValueError, match=r"data.shape_repeats=.*whole numbers >= 1"):
      pipeline.train_dataset(with_repeats(cfg, bad), batch_size=4, seed=0)
  with pytest.raises(ValueError, match="cannot read the shapes"):
    mixture.clip_repeats("a red blob moves left", REPEATS)
