"""The shapes world: procedural captioned videos, and the TFDS builder `shapes`.

Flat-coloured circles, squares and up-pointing triangles glide over black and
bounce elastically off the canvas edges. Every clip is drawn from
`np.random.default_rng([SEED, split_id, index])`, so a config always yields the
same bytes. Colour-shape pairs in `world.HELD_OUT_PAIRS` never appear in train
and are the only pairs in test, which measures compositional generalisation.

The builder writes ArrayRecord files with features that decode without
TensorFlow (zlib `Tensor`s and `Text`), read through `tfds.data_source`:

  builder = build(config.data)   # prepares once, then a no-op
  source = builder.as_data_source(split="train")
"""

import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds

from sora_jax.data import captions
from sora_jax.data import world

SEED = 0
SPLIT_IDS = {"train": 0, "test": 1}
COLOURS = tuple(world.PALETTE)
SIZE_NAMES = tuple(world.SIZES)
DIRECTION_NAMES = tuple(world.DIRECTIONS)
SPEED_NAMES = tuple(world.SPEEDS)
MAX_OBJECTS = 4  # captions of more objects outgrow the default text_len
_ATTRIBUTES = {"colour": COLOURS, "shape": world.SHAPES, "size": SIZE_NAMES,
               "direction": DIRECTION_NAMES, "speed": SPEED_NAMES}


def check_canvas(frames: int, height: int, width: int) -> None:
  """Raises ValueError unless T in [1, 256] and H, W are multiples of 8 in [16, 256]."""
  if not isinstance(frames, (int, np.integer)) or not 1 <= frames <= 256:
    raise ValueError(f"frames must be an int from 1 to 256, got {frames!r}")
  for name, value in (("height", height), ("width", width)):
    if not isinstance(value, (int, np.integer)) or not 16 <= value <= 256 or value % 8:
      raise ValueError(f"{name} must be a multiple of 8 from 16 to 256, got {value!r}")


def _pairs(held_out: bool) -> list[tuple[str, str]]:
  return [(c, s) for c in COLOURS for s in world.SHAPES
          if ((c, s) in world.HELD_OUT_PAIRS) == held_out]


def _start(rng, extent: float, length: int, step: int) -> float:
  """A centre inside the canvas, one extent clear of the edge it moves toward."""
  lo, hi = extent / 2, length - extent / 2
  if step < 0:
    lo = max(lo, 1.5 * extent)
  elif step > 0:
    hi = min(hi, length - 1.5 * extent)
  return float(rng.uniform(lo, hi))


def sample_objects(rng: np.random.Generator, *, height: int, width: int,
                   max_objects: int = 1, held_out: bool = False) -> list[dict]:
  """Draws 1..max_objects objects with distinct colours.

  Each dict holds attribute names (colour, shape, size, direction, speed),
  `extent` (pixels), `start` centre (y, x) and `velocity` (vy, vx) in px/frame.
  `held_out` draws only held-out colour-shape pairs, otherwise never one.
  """
  if not 1 <= max_objects <= MAX_OBJECTS:
    raise ValueError(f"max_objects must be from 1 to {MAX_OBJECTS}, got {max_objects!r}")
  pairs = _pairs(held_out)
  count = int(rng.integers(1, max_objects + 1))
  chosen, used = [], set()
  for i in rng.permutation(len(pairs)):
    if pairs[i][0] not in used and len(chosen) < count:
      chosen.append(pairs[i])
      used.add(pairs[i][0])
  unit = min(height, width)
  objects = []
  for colour, shape in chosen:
    size = SIZE_NAMES[rng.integers(len(SIZE_NAMES))]
    direction = DIRECTION_NAMES[rng.integers(len(DIRECTION_NAMES))]
    speed = SPEED_NAMES[rng.integers(len(SPEED_NAMES))]
    jitter = rng.uniform(-world.SIZE_JITTER, world.SIZE_JITTER)
    extent = float(world.SIZES[size] * unit * (1 + jitter))
    dy, dx = world.DIRECTIONS[direction]
    step = world.SPEEDS[speed] * unit
    start = (_start(rng, extent, height, dy), _start(rng, extent, width, dx))
    objects.append(dict(colour=colour, shape=shape, size=size, direction=direction,
                        speed=speed, extent=extent, start=start,
                        velocity=(dy * step, dx * step)))
  return objects


def trajectory(obj: dict, frames: int, height: int, width: int):
  """Returns (centres float32 [T, 2] as (y, x), edges bounced off in order).

  The bounding box reflects elastically off the canvas; a bounce counts when
  the box passes an edge strictly within the clip.
  """
  t = np.arange(frames, dtype=np.float64)
  half = obj["extent"] / 2
  centres, hits = [], []
  for axis, length, walls in ((0, height, ("top", "bottom")), (1, width, ("left", "right"))):
    span = length - 2 * half  # room the centre has along this axis
    v = obj["velocity"][axis]
    q = obj["start"][axis] - half + v * t  # unfolded offset from the low wall
    folded = np.mod(q, 2 * span)
    centres.append(half + np.where(folded > span, 2 * span - folded, folded))
    if v != 0:  # walls lie at q = k * span; even k is the low wall
      lo, hi = sorted((q[0], q[-1]))
      for k in range(int(np.floor(lo / span)) + 1, int(np.ceil(hi / span))):
        hits.append((abs(k * span - q[0]) / abs(v), walls[k % 2]))
  return np.stack(centres, -1).astype(np.float32), tuple(w for _, w in sorted(hits))


def shape_mask(shape: str, centres: np.ndarray, extent: float, height: int,
               width: int) -> np.ndarray:
  """bool [T, H, W]: pixels whose centre lies inside the shape in each frame."""
  r = extent / 2
  dy = (np.arange(height) + 0.5)[None, :, None] - centres[:, 0, None, None]
  dx = (np.arange(width) + 0.5)[None, None, :] - centres[:, 1, None, None]
  if shape == "circle":
    return dy**2 + dx**2 <= r**2
  if shape == "square":
    return (np.abs(dy) <= r) & (np.abs(dx) <= r)
  if shape == "triangle":  # apex at the top, base = height = extent
    return (dy >= -r) & (dy <= r) & (np.abs(dx) <= (dy + r) / 2)
  raise ValueError(f"shape must be one of {world.SHAPES}, got {shape!r}")


def render_clip(objects, frames: int, height: int, width: int) -> np.ndarray:
  """uint8 [T, H, W, 3]: objects over black, later ones drawn over earlier.

  Objects without `centres` get them from `trajectory`.
  """
  check_canvas(frames, height, width)
  video = np.empty((frames, height, width, 3), np.uint8)
  video[:] = world.BACKGROUND
  for obj in objects:
    centres = obj.get("centres")
    if centres is None:
      centres, _ = trajectory(obj, frames, height, width)
    mask = shape_mask(obj["shape"], np.asarray(centres), obj["extent"], height, width)
    video[mask] = world.PALETTE[obj["colour"]]
  return video


def make_clip(rng: np.random.Generator, *, frames: int, height: int, width: int,
              max_objects: int = 1, held_out: bool = False):
  """Returns (video uint8 [T, H, W, 3], objects, {register: caption})."""
  check_canvas(frames, height, width)
  objects = sample_objects(rng, height=height, width=width, max_objects=max_objects,
                           held_out=held_out)
  for obj in objects:
    obj["centres"], obj["bounces"] = trajectory(obj, frames, height, width)
    obj["start_region"] = captions.start_region(*obj["start"], height, width)
  video = render_clip(objects, frames, height, width)
  texts = {r: captions.caption(objects, r, rng) for r in captions.REGISTERS}
  return video, objects, texts


def pack_objects(objects, frames: int, max_objects: int) -> dict:
  """Ground truth as fixed-shape arrays, padded to max_objects (indices -1)."""
  out = {k: np.full((max_objects,), -1, np.int32) for k in _ATTRIBUTES}
  out["extent"] = np.zeros((max_objects,), np.float32)
  out["centres"] = np.zeros((max_objects, frames, 2), np.float32)
  for i, obj in enumerate(objects):
    for key, names in _ATTRIBUTES.items():
      out[key][i] = names.index(obj[key])
    out["extent"][i] = obj["extent"]
    out["centres"][i] = obj["centres"]
  out["num_objects"] = np.int32(len(objects))
  return out


def unpack_objects(example: dict) -> list[dict]:
  """Inverts `pack_objects`: attribute names, extent and centres per object."""
  objects = []
  for i in range(int(example["num_objects"])):
    obj = {k: names[int(example[k][i])] for k, names in _ATTRIBUTES.items()}
    obj["extent"] = float(example["extent"][i])
    obj["centres"] = np.asarray(example["centres"][i], np.float32)
    objects.append(obj)
  return objects


@dataclasses.dataclass(eq=False)
class ShapesConfig(tfds.core.BuilderConfig):
  """Clip geometry and split sizes; `config_name` makes the name from them."""

  frames: int = 16
  height: int = 32
  width: int = 32
  max_objects: int = 1
  num_train: int = 20_000
  num_test: int = 256


def config_name(frames, height, width, max_objects, num_train, num_test) -> str:
  """E.g. "f16_h32_w32_o1_n20000_t256": distinct sizes never share a folder."""
  return f"f{frames}_h{height}_w{width}_o{max_objects}_n{num_train}_t{num_test}"


def make_config(*, frames, height, width, max_objects, num_train, num_test) -> ShapesConfig:
  """A validated ShapesConfig named by its values."""
  check_canvas(frames, height, width)
  if not isinstance(max_objects, (int, np.integer)) or not 1 <= max_objects <= MAX_OBJECTS:
    raise ValueError(f"max_objects must be an int from 1 to {MAX_OBJECTS}, got {max_objects!r}")
  for key, value in (("num_train", num_train), ("num_test", num_test)):
    if not isinstance(value, (int, np.integer)) or value < 1:
      raise ValueError(f"data.{key} must be an int >= 1, got {value!r}")
  values = dict(frames=int(frames), height=int(height), width=int(width),
                max_objects=int(max_objects), num_train=int(num_train),
                num_test=int(num_test))
  return ShapesConfig(name=config_name(**values), **values)


class Shapes(tfds.core.GeneratorBasedBuilder):
  """Captioned videos of moving shapes (the sora_jax synthetic world)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  BUILDER_CONFIGS = [make_config(frames=16, height=32, width=32, max_objects=1,
                                 num_train=20_000, num_test=256)]
  # No downloads, so no checksums file to find; naming none also skips TFDS's
  # source lookup through `importlib_resources`, which this stack lacks.
  code_path = None

  def _info(self) -> tfds.core.DatasetInfo:
    c = self.builder_config
    tensor = tfds.features.Tensor
    ints = {k: tensor(shape=(c.max_objects,), dtype=np.int32) for k in _ATTRIBUTES}
    features = tfds.features.FeaturesDict({
        "index": tfds.features.Scalar(dtype=np.int64),
        "video": tensor(shape=(c.frames, c.height, c.width, 3), dtype=np.uint8,
                        encoding="zlib"),
        **{f"caption_{r}": tfds.features.Text() for r in captions.REGISTERS},
        "num_objects": tfds.features.Scalar(dtype=np.int32),
        **ints,
        "extent": tensor(shape=(c.max_objects,), dtype=np.float32),
        "centres": tensor(shape=(c.max_objects, c.frames, 2), dtype=np.float32),
    })
    return tfds.core.DatasetInfo(
        builder=self, description=__doc__, features=features,
        disable_shuffling=True,  # record i is example i; Grain shuffles at read time
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download: the data is procedural
    return {split: self._generate_examples(split) for split in SPLIT_IDS}

  def _generate_examples(self, split: str):
    c = self.builder_config
    count = c.num_train if split == "train" else c.num_test
    for index in range(count):
      video, objects, texts = clip_at(split, index, frames=c.frames, height=c.height,
                                      width=c.width, max_objects=c.max_objects)
      example = {"index": index, "video": video,
                 **{f"caption_{r}": t for r, t in texts.items()},
                 **pack_objects(objects, c.frames, c.max_objects)}
      yield index, example


def data_dir(data_cfg) -> str:
  """`data.data_dir` as an absolute path (relative ones resolve against the cwd)."""
  return os.path.abspath(os.path.expanduser(data_cfg.data_dir))


def clip_at(split: str, index: int, *, frames: int, height: int, width: int,
            max_objects: int):
  """Example `index` of `split` as `make_clip` returns it; past the split's size, a fresh clip of
  the same world (each index draws from its own seed)."""
  rng = np.random.default_rng([SEED, SPLIT_IDS[split], index])
  return make_clip(rng, frames=frames, height=height, width=width, max_objects=max_objects,
                   held_out=split == "test")


def builder_from_config(data_cfg) -> Shapes:
  """The Shapes builder for `config.data` (not prepared; see `build`)."""
  if data_cfg.name != "shapes":
    raise ValueError(f"data.name must be 'shapes' for this builder, got {data_cfg.name!r}")
  config = make_config(frames=data_cfg.frames, height=data_cfg.height,
                       width=data_cfg.width, max_objects=data_cfg.max_objects,
                       num_train=data_cfg.num_train, num_test=data_cfg.num_test)
  # TFDS accepts a config named like a listed one only if it is that very object.
  config = Shapes.get_builder_config(config.name) or config
  return Shapes(config=config, data_dir=data_dir(data_cfg), file_format="array_record")


def build(data_cfg) -> Shapes:
  """Writes the data set for `config.data` unless already prepared; returns the builder."""
  builder = builder_from_config(data_cfg)
  if not builder.is_prepared():
    builder.download_and_prepare(file_format="array_record")
  return builder
