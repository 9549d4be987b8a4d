"""A pre-encoded latent cache: the frozen VAE encodes every train clip once, and Grain reads
latents instead of pixels.

On-the-fly encoding runs the VAE encoder inside every train step; at scale that is the larger
part of a latent DiT's step, and the cache pays it once per VAE. Record i is train clip i
(normalised latent means, float32, and the three captions, msgpack in one ArrayRecord file), so the
pipeline's shard / shuffle / caption choices, and hence a seed's data order, are the same as with
pixels. `meta.json` ties the cache to the VAE checkpoint step and the data set it was made from;
training refuses a stale cache.

  sora-jax encode-latents --config=configs/tiny_latent.py --config.data.latent_cache=DIR
  sora-jax train --config=configs/tiny_latent.py --config.data.latent_cache=DIR --workdir=...
"""

import json
import os

import grain
import numpy as np
from flax import serialization

from sora_jax.data import captions

RECORDS = "latents.array_record"
META = "meta.json"


def _data_name(data_cfg) -> str:
  from sora_jax.data import shapes  # noqa: PLC0415 (shapes imports TFDS; readers do not need it)
  return shapes.builder_from_config(data_cfg).builder_config.name


def write(config, *, batch_size: int = 32) -> dict:
  """Encodes the train split of `config.data` with the VAE of `config.model.vae_workdir` into
  `config.data.latent_cache`; returns the metadata written. Atomic: a crash leaves no cache."""
  import jax  # noqa: PLC0415 (encoding needs the models; reading the cache does not)
  from array_record.python.array_record_module import ArrayRecordWriter  # noqa: PLC0415
  from sora_jax.data import pipeline, shapes  # noqa: PLC0415
  from sora_jax.models import latents  # noqa: PLC0415
  out = config.data.latent_cache
  if not out or not config.model.vae_workdir:
    raise ValueError("encode-latents needs --config.data.latent_cache=DIR and a config with "
                     "model.vae_workdir")
  space, frozen = latents.load(config.model.vae_workdir)
  shapes.build(config.data)
  encode = jax.jit(space.encode)
  source = pipeline.data_source(config.data, "train")
  os.makedirs(out, exist_ok=True)
  tmp = os.path.join(out, RECORDS + ".tmp")
  writer = ArrayRecordWriter(tmp, "group_size:1")
  for start in range(0, len(source), batch_size):
    examples = [source[i] for i in range(start, min(start + batch_size, len(source)))]
    video = np.stack([pipeline.to_unit_range(e["video"]) for e in examples])
    pad = batch_size - len(examples)  # one compiled shape for every batch
    video = np.concatenate([video, np.zeros((pad,) + video.shape[1:], video.dtype)])
    z = np.asarray(encode(frozen, video))[:len(examples)]
    for example, latent in zip(examples, z):
      record = {"latent": latent.astype(np.float32)}
      for key in captions.KEYS:
        record[key] = captions.as_text(example[key])
      writer.write(serialization.msgpack_serialize(record))
  writer.close()
  meta = {"vae_workdir": os.path.abspath(config.model.vae_workdir),
          "vae_step": space.step, "data": _data_name(config.data),
          "count": len(source), "latent_shape": list(z.shape[1:])}
  os.replace(tmp, os.path.join(out, RECORDS))
  with open(os.path.join(out, META), "w", encoding="utf-8") as f:
    json.dump(meta, f, indent=2)
  return meta


def check(config, vae_step: int) -> dict:
  """The cache's metadata, checked against the data set `config` trains with and the VAE of
  `config.model.vae_workdir` at checkpoint `vae_step`."""
  path = config.data.latent_cache
  try:
    with open(os.path.join(path, META), encoding="utf-8") as f:
      meta = json.load(f)
  except FileNotFoundError:
    raise ValueError(f"data.latent_cache={path!r} holds no finished cache: run `sora-jax "
                     "encode-latents` with this config first") from None
  want = {"vae_workdir": os.path.abspath(config.model.vae_workdir),
          "vae_step": vae_step, "data": _data_name(config.data)}
  stale = {k: (meta[k], v) for k, v in want.items() if meta[k] != v}
  if stale:
    raise ValueError(f"data.latent_cache={path!r} was made for other inputs "
                     f"(cache, now): {stale}; run `sora-jax encode-latents` again")
  return meta


class DecodeLatent(grain.transforms.Map):
  """A cache record (bytes) -> {"latent": f32 [T', h, w, Cz], the three captions}."""

  def map(self, record):
    return serialization.msgpack_restore(record)


def data_source(path) -> grain.sources.ArrayRecordDataSource:
  """Random access to the records of the cache in `path` (raw bytes; see DecodeLatent)."""
  return grain.sources.ArrayRecordDataSource([os.path.join(path, RECORDS)])
