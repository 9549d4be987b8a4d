"""The training mixture: train clips repeated within every epoch by the shapes they show.

`data.shape_repeats` = (circle, square, triangle) whole-number repeat counts: a clip is listed as
many times as the largest count among its objects' shapes, before the pipeline shards and
shuffles, so (1, 2, 1) makes half the clips of an epoch squares instead of a third. The attribute
a model draws worst then gets more of the updates without new data (class-balanced sampling, by
difficulty). The shapes are read back from each clip's plain caption (captions.parse_prompt), so a
latent cache, which keeps captions and not the ground truth, mixes the same way as pixels.
"""

import numpy as np

from sora_jax.data import captions
from sora_jax.data import world


def check_repeats(repeats) -> tuple | None:
  """data.shape_repeats as a tuple of ints, one per world.SHAPES; None when every count is 1
  (or none is given): the plain epoch, so older runs keep their data order."""
  if not repeats:
    return None
  counts = tuple(repeats)
  if len(counts) != len(world.SHAPES) or not all(
      isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c >= 1 for c in counts):
    raise ValueError(f"data.shape_repeats={counts!r}; give {len(world.SHAPES)} whole numbers "
                     f">= 1, for {', '.join(world.SHAPES)}")
  return None if all(c == 1 for c in counts) else tuple(int(c) for c in counts)


def clip_repeats(plain_caption, repeats: tuple) -> int:
  """How often the clip with this plain caption is listed: the largest count of its shapes."""
  text = captions.as_text(plain_caption)
  shapes = [o["shape"] for o in captions.parse_prompt(text)]
  if not shapes or None in shapes:
    raise ValueError(f"cannot read the shapes of the training caption {text!r}")
  return max(repeats[world.SHAPES.index(s)] for s in shapes)


class RepeatedSource:
  """A random-access source read through an index list: `source` with each clip i listed
  `clip_repeats` times, in index order (the pipeline shuffles after)."""

  def __init__(self, source, decode, repeats: tuple):
    counts = [clip_repeats(decode(source[i])["caption_plain"], repeats)
              for i in range(len(source))]
    self.source = source
    self.indices = np.repeat(np.arange(len(source)), counts)

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, i):
    return self.source[int(self.indices[i])]
