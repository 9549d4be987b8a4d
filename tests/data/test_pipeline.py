"""Tests of the Grain pipeline: batches, determinism, process shards, resumable state."""

import itertools
import sys

import grain
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest

from sora_jax.data import captions
from sora_jax.data import pipeline
from sora_jax.data import shapes
from sora_jax.data import tokenizer
from sora_jax.data import world
from tests.conftest import tiny_data_config

NUM_TRAIN = 48


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
  c = tiny_data_config(tmp_path_factory.mktemp("tfds"), num_train=NUM_TRAIN)
  shapes.build(c)
  return c


def take(iterator, n):
  return list(itertools.islice(iterator, n))


def assert_same_batches(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for key in x:
      np.testing.assert_array_equal(x[key], y[key])


def test_batch_shapes_dtypes_and_range(cfg):
  (batch,) = take(iter(pipeline.train_dataset(cfg, batch_size=4, seed=0)), 1)
  assert set(batch) == {"video", "text"}
  video, text = batch["video"], batch["text"]
  assert isinstance(video, np.ndarray) and video.dtype == np.float32
  assert video.shape == (4, 8, 16, 16, 3)
  assert video.min() >= -1.0 and video.max() <= 1.0 and video.min() == -1.0  # black is -1
  assert text.dtype == np.int32 and text.shape == (4, cfg.text_len + 1)
  assert np.all(text[:, 0] == tokenizer.BOS_ID)
  for row in text:  # every caption names a shape the world knows
    assert captions.parse_prompt(tokenizer.decode(row))


def test_reading_needs_no_tensorflow(cfg):
  take(iter(pipeline.train_dataset(cfg, batch_size=4, seed=0)), 1)
  pipeline.eval_examples(cfg, limit=1)
  assert "tensorflow" not in sys.modules


def test_same_seed_same_batches(cfg):
  a = take(iter(pipeline.train_dataset(cfg, batch_size=4, seed=7)), 15)
  b = take(iter(pipeline.train_dataset(cfg, batch_size=4, seed=7)), 15)
  c = take(iter(pipeline.train_dataset(cfg, batch_size=4, seed=8)), 15)
  assert_same_batches(a, b)
  assert not np.array_equal(a[0]["video"], c[0]["video"])


def video_keys(batches):
  return [v.tobytes() for b in batches for v in b["video"]]


def test_epochs_reshuffle_and_captions_vary(cfg):
  # 48 examples / batch 8 = 6 batches per epoch.
  batches = take(iter(pipeline.train_dataset(cfg, batch_size=8, seed=0)), 12)
  first, second = video_keys(batches[:6]), video_keys(batches[6:])
  assert sorted(first) == sorted(second) and len(set(first)) == NUM_TRAIN
  assert first != second
  texts = {tokenizer.decode(t) for b in batches for t in b["text"]}
  assert len(texts) > NUM_TRAIN  # registers drawn per read, not fixed per example


def test_process_shards_are_disjoint(cfg):
  shards = []
  for index in range(2):
    ds = pipeline.train_dataset(cfg, batch_size=8, seed=0, process_index=index,
                                process_count=2)
    batches = take(iter(ds), NUM_TRAIN // 8)  # one epoch of 24 examples, batch 4
    assert batches[0]["video"].shape[0] == 4
    shards.append(set(video_keys(batches)))
  assert len(shards[0]) == len(shards[1]) == NUM_TRAIN // 2
  assert not shards[0] & shards[1]
  source = pipeline.data_source(cfg, "train")
  everything = {(source[i]["video"].astype(np.float32) / 127.5 - 1).tobytes()
                for i in range(NUM_TRAIN)}
  assert shards[0] | shards[1] == everything


@pytest.mark.parametrize("skip", [3, 5])  # 5: the restored stream crosses an epoch
def test_iterator_state_restores_mid_stream(cfg, skip):
  ds = pipeline.train_dataset(cfg, batch_size=8, seed=1)
  it = iter(ds)
  take(it, skip)
  state = it.get_state()
  expected = take(it, 4)
  fresh = iter(pipeline.train_dataset(cfg, batch_size=8, seed=1))
  fresh.set_state(state)
  assert_same_batches(take(fresh, 4), expected)


def test_orbax_checkpoints_the_iterator(cfg, tmp_path):
  it = iter(pipeline.train_dataset(cfg, batch_size=4, seed=2))
  take(it, 3)
  with ocp.CheckpointManager(tmp_path / "ckpt", item_names=("data",)) as manager:
    manager.save(3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)))
    manager.wait_until_finished()
  expected = take(it, 3)
  fresh = iter(pipeline.train_dataset(cfg, batch_size=4, seed=2))
  with ocp.CheckpointManager(tmp_path / "ckpt", item_names=("data",)) as manager:
    manager.restore(3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(fresh)))
  assert_same_batches(take(fresh, 3), expected)


def _captions(cfg, dropout, batches=6, register_weights=()):
  c = ml_collections.ConfigDict(cfg.to_dict())
  c.attribute_dropout = dropout
  c.register_weights = register_weights
  c.text_len = 200  # whole detailed captions
  data = take(iter(pipeline.train_dataset(c, batch_size=8, seed=3)), batches)
  return [tokenizer.decode(t) for b in data for t in b["text"]]


def test_attribute_dropout_drops_colour_and_shape_words_by_seed(cfg):
  kept = _captions(cfg, 0.0)
  dropped = _captions(cfg, 0.5)
  assert dropped == _captions(cfg, 0.5)  # a pure function of the seed
  colour = lambda t: any(c in t.split() for c in world.PALETTE)
  shaped = lambda t: bool(captions.parse_prompt(t))
  assert all(colour(t) and shaped(t) for t in kept)
  # each word kind goes from about half of the 48 captions, independently
  assert 12 <= sum(not colour(t) for t in dropped) <= 36
  assert 12 <= sum(not shaped(t) for t in dropped) <= 36
  assert any(not colour(t) and not shaped(t) for t in dropped)
  assert not any(colour(t) or shaped(t) for t in _captions(cfg, 1.0, batches=2))
  with pytest.raises(ValueError, match="attribute_dropout=1.5"):
    _captions(cfg, 1.5)


def _register(text: str) -> str:
  """Which register a training caption came from, by its templates (captions.TEMPLATES)."""
  if "black background" in text:
    return "detailed"
  return "plain" if text.startswith("a ") else "short"


def test_register_weights_choose_which_captions_train(cfg):
  registers = lambda weights: {_register(t) for t in _captions(cfg, 0.0, 2, weights)}
  assert registers((0, 1, 0)) == {"plain"}
  assert registers((1, 1, 0)) == {"short", "plain"}
  assert registers(()) == registers((2, 2, 2)) == set(captions.REGISTERS)
  assert _captions(cfg, 0.0, 2, (2, 2, 2)) == _captions(cfg, 0.0, 2)  # equal: the uniform draw
  for bad in [(1, 1), (1, -1, 1), (0, 0, 0)]:
    with pytest.raises(ValueError, match="register_weights"):
      pipeline.register_probabilities(bad)


def test_bad_arguments(cfg, tmp_path):
  with pytest.raises(ValueError, match="multiple of process_count=2, got 5"):
    pipeline.train_dataset(cfg, batch_size=5, seed=0, process_count=2)
  with pytest.raises(ValueError, match="process_index"):
    pipeline.train_dataset(cfg, batch_size=4, seed=0, process_index=2, process_count=2)
  with pytest.raises(ValueError, match="fewer than its batch"):
    pipeline.train_dataset(cfg, batch_size=64, seed=0)
  with pytest.raises(ValueError, match="build"):
    pipeline.train_dataset(tiny_data_config(tmp_path), batch_size=4, seed=0)
  with pytest.raises(ValueError, match="split"):
    pipeline.eval_examples(cfg, split="validation")


def test_eval_examples(cfg):
  examples = pipeline.eval_examples(cfg)
  assert [e["index"] for e in examples] == list(range(8))
  assert len(pipeline.eval_examples(cfg, limit=3)) == 3
  for ex in examples:
    assert ex["video"].dtype == np.uint8 and ex["video"].shape == (8, 16, 16, 3)
    assert all(isinstance(ex[f"caption_{r}"], str) for r in captions.REGISTERS)
    for obj in ex["objects"]:
      assert (obj["colour"], obj["shape"]) in world.HELD_OUT_PAIRS
      assert obj["centres"].shape == (8, 2)
    np.testing.assert_array_equal(shapes.render_clip(ex["objects"], 8, 16, 16), ex["video"])


def test_worker_processes_give_the_same_resumable_stream(cfg):
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.FLAGS.mark_as_parsed()  # Grain workers read absl flags; pytest parses none
  workers = ml_collections.ConfigDict(cfg.to_dict())
  workers.num_workers = 2
  it = iter(pipeline.train_dataset(workers, batch_size=4, seed=3))
  try:
    first = take(it, 3)
    state = it.get_state()
    expected = take(it, 3)
  finally:
    it.close()
  assert_same_batches(first, take(iter(pipeline.train_dataset(cfg, batch_size=4, seed=3)), 3))
  fresh = iter(pipeline.train_dataset(workers, batch_size=4, seed=3))
  try:
    fresh.set_state(state)
    assert_same_batches(take(fresh, 3), expected)
  finally:
    fresh.close()
