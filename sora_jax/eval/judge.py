"""The judge of the shapes world: does a clip show the prompt's objects?

Each object of a prompt (a dict with colour, shape and optionally size,
direction, speed, named as in `sora_jax.data.world`) is found by its colour:
pixels are labelled by their nearest palette entry (blur-tolerant, see
label_pixels), and in each frame the object is the largest 4-connected blob of
its colour, so stray pixels and noise do not count. Shape, size and motion are
read off that blob. Every attribute check requires presence: a missing object
has no right shape. Objects of one prompt should have distinct colours;
same-colour objects are told apart only by blob size (the k-th object of a
colour gets the k-th largest blob).
"""

import math
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from sora_jax.data import world

COLOUR_THRESHOLD = 60.0  # max RGB distance from a palette entry to count as that colour
BLEND_MIN, BLEND_MAX = 0.5, 1.25  # blends with the background that still count, see label_pixels
PRESENCE_AREA_FRACTION = 0.25  # blob area needed, as a fraction of a small square's area
PRESENCE_MIN_PIXELS = 4  # floor of that area on tiny frames
PRESENCE_FRAME_FRACTION = 0.9  # fraction of frames the blob must be found in
# Ideal shape features (fill ratio, top-half fraction, corner fill), see _shape_features.
# Fill ratio alone is ambiguous on small rasters: a 9 px circle can fill 0.65 of its
# bbox and a 6 px triangle 0.67; the other two features separate them.
SHAPE_FEATURES = {"circle": (math.pi / 4, 0.5, 0.0), "square": (1.0, 0.5, 1.0),
                  "triangle": (0.5, 0.25, 0.5)}
# Blur keeps symmetry (top-half) best and corners worst; weights measured on
# blurred renders, keeping a margin >= 0.27 on clean 32 px ones.
SHAPE_FEATURE_WEIGHTS = np.array([1.0, 3.0, 0.5])
MAX_SPEED = 0.25  # fastest motion the fit searches, as a fraction of min(H, W) a frame
MIN_SPEED = 0.5 * world.SPEEDS["slow"]  # slower than this (of min(H, W) a frame) is static
MIN_FIT_FRAMES = 3  # frames with the object needed to read motion
WALL_SLACK = 1.0  # px the motion fit may move each estimated wall
BOUNCE_COST = 0.1  # px of mean residual a fitted bounce must save: ties go to fewer bounces
OBJECT_KEYS = ("colour", "shape", "size", "direction", "speed")
FIELDS = ("presence", "colour", "shape", "size", "direction", "speed")

_NAMES = ("background",) + tuple(world.PALETTE)
_BG = np.array(world.BACKGROUND, np.float32)
_COLOURS = np.array(list(world.PALETTE.values()), np.float32) - _BG  # [8, 3]
_FOUR_CONNECTED = np.array([np.zeros((3, 3)), [[0, 1, 0], [1, 1, 1], [0, 1, 0]],
                            np.zeros((3, 3))], bool)  # per frame, never across time


def judge_video(frames, objects) -> list[dict]:
  """Scores each prompt object in uint8 frames [T, H, W, 3]; one dict per object.

  Bool fields presence, colour, shape, size, direction, speed (the last three
  None when the object does not ask for them), float smoothness (mean pixel
  deviation of the centre from a constant-speed bouncing path; lower is
  smoother, NaN if unmeasurable) and the predicted values pred_* (None when
  unmeasurable; pred_direction and pred_speed may be "static").
  """
  frames = _check_frames(frames)
  objects = [_check_object(o) for o in objects]
  labels = label_pixels(frames)
  counts = _blob_mass(labels)
  results, seen = [], {}
  for obj in objects:
    rank = seen.get(obj["colour"], 0)
    seen[obj["colour"]] = rank + 1
    others = {o["colour"] for o in objects} - {obj["colour"]}
    results.append(_judge_object(labels, counts, obj, rank, others))
  return results


def summarize(results) -> dict:
  """Fraction correct per field over all objects of all videos.

  `results` is a list (videos) of judge_video outputs. Fields nobody asked for
  are None; "all" is the fraction of objects right on every asked field and
  "smoothness" the mean over objects where it was measured.
  """
  objects = [r for video in results for r in video]
  summary = {"videos": len(results), "objects": len(objects)}
  for field in FIELDS:
    asked = [r[field] for r in objects if r[field] is not None]
    summary[field] = float(np.mean(asked)) if asked else None
  alls = [all(r[f] for f in FIELDS if r[f] is not None) for r in objects]
  summary["all"] = float(np.mean(alls)) if alls else None
  smooth = [r["smoothness"] for r in objects if np.isfinite(r["smoothness"])]
  summary["smoothness"] = float(np.mean(smooth)) if smooth else None
  return summary


def label_pixels(frames: np.ndarray) -> np.ndarray:
  """Labels each pixel 1 + its palette index, 0 if background, -1 if neither.

  A pixel shows colour c when it lies within COLOUR_THRESHOLD of a blend
  bg + a (c - bg) with a in [BLEND_MIN, BLEND_MAX] (the nearest such c wins).
  On flat renders that is plain distance to c; on blurred ones the a >= 1/2
  cut puts the mask edge at the true edge (half max), so size and shape hold.
  Returns int [T, H, W].
  """
  x = frames.astype(np.float32) - _BG  # [T, H, W, 3]
  dots = x @ _COLOURS.T  # [T, H, W, 8]
  norms2 = (_COLOURS * _COLOURS).sum(-1)
  a = np.clip(dots / norms2, BLEND_MIN, BLEND_MAX)
  dist2 = (x * x).sum(-1, keepdims=True) - 2 * a * dots + a * a * norms2
  nearest = dist2.argmin(axis=-1)
  is_colour = np.take_along_axis(dist2, nearest[..., None], -1)[..., 0] <= COLOUR_THRESHOLD ** 2
  is_background = (x * x).sum(-1) <= COLOUR_THRESHOLD ** 2
  return np.where(is_colour, nearest + 1, np.where(is_background, 0, -1))


def _check_frames(frames) -> np.ndarray:
  frames = np.asarray(frames)
  if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
    raise ValueError(
        f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
  if frames.shape[0] < 2 or min(frames.shape[1:3]) < 4:
    raise ValueError(f"need at least 2 frames of at least 4x4 pixels, got {frames.shape}")
  return frames


def _check_object(obj) -> dict:
  """Validates one prompt object; keys beyond OBJECT_KEYS are ignored."""
  allowed = {"colour": world.PALETTE, "shape": world.SHAPES, "size": world.SIZES,
             "direction": world.DIRECTIONS, "speed": world.SPEEDS}
  for key in ("colour", "shape"):
    if key not in obj:
      raise ValueError(f"object {obj!r} lacks the required key {key!r}")
  for key, names in allowed.items():
    if obj.get(key) is not None and obj[key] not in names:
      raise ValueError(f"object {key} {obj[key]!r} is not one of {', '.join(names)}")
  return {k: obj[k] for k in OBJECT_KEYS if obj.get(k) is not None}  # None: not asked


def _judge_object(labels, counts, obj, rank, others) -> dict:
  t, h, w = labels.shape
  side = min(h, w)
  track = _track(labels, _NAMES.index(obj["colour"]), rank)
  min_pixels = max(PRESENCE_MIN_PIXELS,
                   PRESENCE_AREA_FRACTION * (world.SIZES["small"] * side) ** 2)
  found = track["area"] >= min_pixels  # [T]
  present = bool(found.mean() >= PRESENCE_FRAME_FRACTION)
  pred = {"pred_colour": _dominant_colour(counts, others), "pred_shape": None,
          "pred_size": None, "pred_direction": None, "pred_speed": None,
          "fill_ratio": math.nan, "extent": math.nan, "smoothness": math.nan,
          "found_fraction": float(found.mean())}
  if found.any():
    feats = np.median(track["features"][found], axis=0)
    shape = min(SHAPE_FEATURES, key=lambda s: np.linalg.norm(
        SHAPE_FEATURE_WEIGHTS * (feats - SHAPE_FEATURES[s])))
    extents = track["extent"][found]
    if shape == "triangle":  # its bbox runs up to 1.5 px short; area = extent^2 / 2 does not
      extents = np.maximum(extents, np.sqrt(2 * track["area"][found]))
    extent = float(np.median(extents)) / side
    pred.update(fill_ratio=float(feats[0]), extent=extent, pred_shape=shape,
                pred_size=min(world.SIZES,
                              key=lambda s: abs(math.log(extent / world.SIZES[s]))))
  pred.update(_motion(track, found, (h, w)))

  def check(key):
    if key not in obj:
      return None
    return present and pred[f"pred_{key}"] == obj[key]

  return {"presence": present, **{k: check(k) for k in OBJECT_KEYS}, **pred}


def _dominant_colour(counts, others) -> str | None:
  """The colour of the most blob mass, not counting the prompt's other objects' colours."""
  ranked = [i for i in np.argsort(-counts, kind="stable")
            if i > 0 and counts[i] > 0 and _NAMES[i] not in others]
  return _NAMES[ranked[0]] if ranked else None


def _blobs(labels, colour_index) -> tuple:
  """4-connected blobs of one colour, per frame: (ids [T, H, W], sizes, boxes, frame of each)."""
  blobs, n = ndimage.label(labels == colour_index, structure=_FOUR_CONNECTED)
  sizes = np.bincount(blobs.ravel(), minlength=n + 1)[1:]
  boxes = ndimage.find_objects(blobs)
  return blobs, sizes, boxes, np.array([box[0].start for box in boxes], int)


def _blob_mass(labels) -> np.ndarray:
  """Per label, the largest blob's area summed over frames (0 for background).

  This ranks colours by their main object, not by scattered pixels (noise).
  """
  mass = np.zeros(len(_NAMES))
  for k in range(1, len(_NAMES)):
    _, sizes, _, frame_of = _blobs(labels, k)
    per_frame = np.zeros(labels.shape[0])
    np.maximum.at(per_frame, frame_of, sizes)
    mass[k] = per_frame.sum()
  return mass


def _track(labels, colour_index, rank) -> dict:
  """Per frame, the area, bbox and centres of the rank-th largest blob of a colour.

  Arrays of length T; area 0 (and NaN positions) where the frame has no such blob.
  """
  t = labels.shape[0]
  track = {k: np.zeros(t) for k in ("area", "extent")}
  track["features"] = np.full((t, 3), np.nan)
  for k in ("cy", "cx", "by", "bx", "bh", "bw"):
    track[k] = np.full(t, np.nan)
  blobs, sizes, boxes, frame_of = _blobs(labels, colour_index)
  if not len(sizes):
    return track
  centres = ndimage.center_of_mass(np.ones_like(blobs), blobs, np.arange(1, len(sizes) + 1))
  for f in range(t):
    ids = np.flatnonzero(frame_of == f)
    if len(ids) <= rank:
      continue
    i = ids[np.argsort(-sizes[ids], kind="stable")[rank]]
    _, ys, xs = boxes[i]
    bh, bw = ys.stop - ys.start, xs.stop - xs.start
    track["area"][f], track["extent"][f] = sizes[i], max(bh, bw)
    track["features"][f] = _shape_features(blobs[boxes[i]][0] == i + 1)
    track["cy"][f], track["cx"][f] = centres[i][1], centres[i][2]
    track["by"][f], track["bx"][f] = (ys.start + ys.stop - 1) / 2, (xs.start + xs.stop - 1) / 2
    track["bh"][f], track["bw"][f] = bh, bw
  return track


def _shape_features(mask) -> np.ndarray:
  """(fill ratio, top-half fraction, corner fill) of a blob's bbox crop [h, w].

  Fill: area / bbox area. Top-half: share of the area above the middle row (a
  triangle pointing up has 1/4). Corner fill: filled share of the four corner
  blocks of side ~1/8 (a circle leaves them empty, a square fills them).
  """
  h, w = mask.shape
  area = mask.sum()
  top = mask[:h // 2].sum() + (mask[h // 2].sum() / 2 if h % 2 else 0)
  kh, kw = max(1, h // 8), max(1, w // 8)
  corners = [mask[:kh, :kw], mask[:kh, -kw:], mask[-kh:, :kw], mask[-kh:, -kw:]]
  return np.array([area / (h * w), top / area, np.mean([c.mean() for c in corners])])


def _motion(track, found, size) -> dict:
  """Direction from a bouncing-path fit over the first half; speed and smoothness over all.

  The prompt's direction is the initial one, so a bounce in the first half must
  not flip it: the fitted path reflects off the canvas edges.
  """
  t_all = np.flatnonzero(found)
  first = t_all[t_all < max(MIN_FIT_FRAMES, math.ceil(len(found) / 2))]
  if len(first) < MIN_FIT_FRAMES:
    return {}
  side = min(size)
  # The axis of motion: the larger median step over the first half (bounces
  # only flip signs); then a bouncing-path fit on that axis gives the sign.
  steps = [np.median(np.abs(np.diff(track[c][first]) / np.diff(first))) for c in ("cy", "cx")]
  axis = int(steps[1] > steps[0])
  centre, bbox_centre, extent = [("cy", "by", "bh"), ("cx", "bx", "bw")][axis]
  pos = track[centre]
  # Walls for the centroid: bbox centre limits plus the centroid's offset in the bbox.
  offset = np.median(pos[found] - track[bbox_centre][found])
  half = (np.median(track[extent][found]) - 1) / 2
  lo, hi = half + offset, size[axis] - 1 - half + offset
  path_first = _fit_path(first, pos[first], lo, hi, side)
  step = [0, 0]
  if abs(path_first.v) >= MIN_SPEED * side:
    step[axis] = int(np.sign(path_first(first[0] + 1e-3) - path_first(first[0])))
  direction = next((d for d, s in world.DIRECTIONS.items() if tuple(step) == s), "static")
  path = _fit_path(t_all, pos[t_all], lo, hi, side)
  along = pos[t_all] - path(t_all)
  other = track[("cx", "cy")[axis]][t_all]
  across = other - np.median(other)
  speed = abs(path.v) / side
  return {"pred_direction": direction,
          "pred_speed": "static" if speed < MIN_SPEED else min(
              world.SPEEDS, key=lambda s: abs(math.log(speed / world.SPEEDS[s]))),
          "smoothness": float(np.mean(np.hypot(along, across)))}


def _reflect(x, lo, hi):
  """Folds positions x into [lo, hi] as an elastic bounce between two walls (hi > lo)."""
  span = hi - lo
  y = np.mod(x - lo, 2 * span)
  return lo + np.where(y > span, 2 * span - y, y)


class _Path(NamedTuple):
  """The elastic path reflect(p0 + v t) between walls lo and hi; err: mean abs residual."""
  p0: float
  v: float
  lo: float
  hi: float
  err: float

  def __call__(self, t):
    if self.hi <= self.lo:
      return np.full(np.shape(t), self.p0)
    return _reflect(self.p0 + self.v * np.asarray(t, float), self.lo, self.hi)


def _fit_path(t, pos, lo, hi, side) -> _Path:
  """The best elastic path through positions `pos` at frames `t`, by grid search.

  A coarse grid over start and velocity with the estimated walls, then finer
  grids; the first also moves each wall by up to WALL_SLACK px, since a
  rasterised bbox (hence the wall estimate) is about a pixel off the shape.
  """
  t = np.asarray(t, float)
  if hi - lo < 2 * WALL_SLACK + 1:  # the object fills the canvas: it cannot move
    c = float(np.median(pos))
    return _Path(c, 0.0, c, c, float(np.mean(np.abs(pos - c))))
  p_step, v_step, vmax = side / 64, side / 160, MAX_SPEED * side
  grids = (np.arange(lo, hi + p_step, p_step), np.arange(-vmax, vmax + v_step, v_step),
           np.array([lo]), np.array([hi]))
  for stage in range(3):
    best = _grid_search(t, pos, *grids)
    walls = np.linspace(-WALL_SLACK, WALL_SLACK, 5) if stage == 0 else np.zeros(1)
    grids = (best.p0 + np.linspace(-p_step, p_step, 9), best.v + np.linspace(-v_step, v_step, 9),
             best.lo + walls, best.hi + walls)
    p_step, v_step = p_step / 4, v_step / 4
  return best


def _grid_search(t, pos, p0s, vs, los, his) -> _Path:
  """The path of least mean abs residual (plus BOUNCE_COST a bounce) on the grid.

  The bounce cost settles ties such as an object starting at a wall: moving
  away from it, or into it and bouncing at once, fit the frames equally well.
  """
  x = p0s[:, None, None, None, None] + vs[None, :, None, None, None] * t  # [P, V, 1, 1, T]
  lo, hi = los[:, None, None], his[:, None]
  paths = _reflect(x, lo, hi)  # [P, V, L, H, T]
  err = np.mean(np.abs(paths - pos), axis=-1)
  # Walls crossed by the unfolded path from t=0 (a start outside counts too) to the end.
  laps = np.floor((x[..., [0, -1]] - lo) / (hi - lo))  # [P, V, L, H, 2]
  bounces = np.abs(laps[..., 1] - laps[..., 0]) + (laps[..., 0] != 0)
  i, j, k, m = np.unravel_index(np.argmin(err + BOUNCE_COST * bounces), err.shape)
  return _Path(float(p0s[i]), float(vs[j]), float(los[k]), float(his[m]), float(err[i, j, k, m]))
