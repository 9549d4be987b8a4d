"""Grain input pipeline over the TFDS shapes data, and raw examples for the judge.

  source -> shard by process -> shuffle(seed) -> repeat -> decode video to [-1, 1]
  -> pick a caption register (seeded) and tokenize -> batch -> IterDataset

Every step is indexed, so the data order, caption choices included, is a pure
function of (seed, process_index, process_count, batch_size): the iterator's
`get_state()` is just a position and Orbax checkpoints it with
`grain.checkpoint.CheckpointSave(iterator)`. The worker count is part of that
contract too (DESIGN.md): keep `data.num_workers` fixed across a resume.
"""

import grain
import numpy as np
import tensorflow_datasets as tfds

from sora_jax.data import captions
from sora_jax.data import latent_cache
from sora_jax.data import mixture
from sora_jax.data import shapes
from sora_jax.data import tokenizer


def to_unit_range(video_uint8) -> np.ndarray:
  """uint8 pixels -> float32 in [-1, 1], the range the models see (video_io.to_uint8 inverts)."""
  return np.asarray(video_uint8, np.float32) / 127.5 - 1.0


class DecodeVideo(grain.transforms.Map):
  """uint8 video -> float32 in [-1, 1]; keeps the captions, drops ground truth."""

  def map(self, example):
    video = to_unit_range(example["video"])  # [T, H, W, 3]
    return {"video": video, **{k: example[k] for k in captions.KEYS}}


class TokenizeRandomCaption(grain.transforms.RandomMap):
  """Picks one caption register at random (uniformly, or with `register_weights` in the order
  of captions.REGISTERS), drops each of its colour and shape words with
  probability `attribute_dropout` (captions.drop_attributes), and tokenizes it to int32 [length]."""

  def __init__(self, length: int, attribute_dropout: float = 0.0, register_weights=()):
    if not 0.0 <= attribute_dropout <= 1.0:
      raise ValueError(f"data.attribute_dropout={attribute_dropout!r}; must be in [0, 1]")
    self.length = length
    self.attribute_dropout = attribute_dropout
    self.register_p = register_probabilities(register_weights)

  def random_map(self, example, rng: np.random.Generator):
    if self.register_p is None:  # the uniform draw of runs before register weights existed
      register = rng.integers(len(captions.KEYS))
    else:
      register = rng.choice(len(captions.KEYS), p=self.register_p)
    text = captions.as_text(example[captions.KEYS[register]])
    if self.attribute_dropout:  # no draw without it: a seed's captions stay as they were
      drop = rng.random(len(captions.DROPPABLE)) < self.attribute_dropout
      text = captions.drop_attributes(text, [k for k, d in zip(captions.DROPPABLE, drop) if d])
    clip = {k: example[k] for k in ("video", "latent") if k in example}
    return {**clip, "text": tokenizer.encode(text, self.length)}


def register_probabilities(weights) -> np.ndarray | None:
  """data.register_weights (one per captions.REGISTERS) as probabilities, or None when they are
  equal (or absent): the uniform draw, which keeps older runs' captions. A clear error for a
  wrong count, a negative weight or all zeros."""
  w = np.asarray(weights or (1.0,) * len(captions.REGISTERS), np.float64)
  if w.shape != (len(captions.REGISTERS),) or (w < 0).any() or w.sum() <= 0:
    raise ValueError(f"data.register_weights={tuple(weights)!r}; give {len(captions.REGISTERS)} "
                     f"weights >= 0, not all zero, for {', '.join(captions.REGISTERS)}")
  return None if (w == w[0]).all() else w / w.sum()


def data_source(data_cfg, split: str):
  """Random-access source of the prepared split; raises if `build` has not run."""
  if split not in shapes.SPLIT_IDS:
    raise ValueError(f"split must be one of {tuple(shapes.SPLIT_IDS)}, got {split!r}")
  builder = shapes.builder_from_config(data_cfg)
  if not builder.is_prepared():
    raise ValueError(
        f"no prepared shapes data {builder.builder_config.name!r} under data_dir"
        f" {builder.data_dir!r}: call sora_jax.data.shapes.build(config.data) first"
    )
  return tfds.data_source(
      "shapes", split=split, data_dir=shapes.data_dir(data_cfg),
      builder_kwargs={"config": builder.builder_config}, download=False)


def train_dataset(data_cfg, *, batch_size: int, seed: int, process_index: int = 0,
                  process_count: int = 1) -> grain.IterDataset:
  """Infinite batches {"video": f32 [B, T, H, W, 3], "text": i32 [B, text_len + 1]}; with
  `data_cfg.latent_cache` set, {"latent": f32 [B, T', h, w, Cz], "text": ...} from that cache.

  B = batch_size // process_count: each process reads a disjoint, equally long
  slice of the train split. Epochs are reshuffled (`shuffle` before `repeat`
  folds the epoch into the seed).
  """
  if not isinstance(process_count, int) or process_count < 1:
    raise ValueError(f"process_count must be an int >= 1, got {process_count!r}")
  if not isinstance(process_index, int) or not 0 <= process_index < process_count:
    raise ValueError(f"process_index must be in [0, {process_count}), got {process_index!r}")
  if not isinstance(batch_size, int) or batch_size < 1 or batch_size % process_count:
    raise ValueError(
        f"batch_size must be a positive multiple of process_count={process_count},"
        f" got {batch_size!r}")
  if not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
    raise ValueError(f"seed must be in [0, 2**32), got {seed!r}")
  cache = data_cfg.get("latent_cache", "")
  source = latent_cache.data_source(cache) if cache else data_source(data_cfg, "train")
  repeats = mixture.check_repeats(data_cfg.get("shape_repeats", ()))
  if repeats:  # before the process slice, so every process keeps an equal share of the mixture
    decode = latent_cache.DecodeLatent().map if cache else (lambda example: example)
    source = mixture.RepeatedSource(source, decode, repeats)
  per_process = len(source) // process_count
  local_batch = batch_size // process_count
  if per_process < local_batch:
    raise ValueError(
        f"each of {process_count} processes gets {per_process} train examples,"
        f" fewer than its batch of {local_batch}: raise data.num_train")
  ds = grain.MapDataset.source(source)
  ds = ds[process_index : per_process * process_count : process_count]
  ds = ds.seed(seed)  # shuffle and random_map derive distinct seeds from it
  ds = ds.shuffle().repeat()
  ds = ds.map(latent_cache.DecodeLatent() if cache else DecodeVideo())
  ds = ds.random_map(TokenizeRandomCaption(data_cfg.text_len + 1,
                                           float(data_cfg.get("attribute_dropout", 0.0)),
                                           tuple(data_cfg.get("register_weights", ()))))
  ds = ds.batch(local_batch, drop_remainder=True)
  # Bounded read-ahead: the default buffer of 500 elements would hold 500 batches.
  ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=4))
  if data_cfg.num_workers > 0:
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=data_cfg.num_workers))
  return ds


def eval_examples(data_cfg, split: str = "test", limit: int | None = None) -> list[dict]:
  """Raw examples in index order: uint8 video, the three captions, objects.

  Each dict: index, video uint8 [T, H, W, 3], caption_short / caption_plain /
  caption_detailed (str) and objects (see `shapes.unpack_objects`).
  """
  if limit is not None and (not isinstance(limit, int) or limit < 0):
    raise ValueError(f"limit must be an int >= 0 or None, got {limit!r}")
  source = data_source(data_cfg, split)
  count = len(source) if limit is None else min(limit, len(source))
  out = []
  for i in range(count):
    ex = source[i]
    item = {"index": int(ex["index"]), "video": ex["video"]}
    for key in captions.KEYS:
      item[key] = captions.as_text(ex[key])
    item["objects"] = shapes.unpack_objects(ex)
    out.append(item)
  return out
