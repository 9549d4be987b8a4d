"""Read and write generated clips as .mp4, .gif, .png (a contact sheet) or .npy.

Every writer is atomic: it writes a temporary file in the target directory and
`os.replace`s it, so a crash never leaves half a file or clobbers a good one.

Shapes-world clips are tiny (32x32), so the .mp4 writer upscales them by an
integer nearest-neighbour factor to at least `MIN_MP4_SIDE` pixels on the short
side (players blur or refuse tiny videos); the factor is stored in the file's
`comment` metadata and `read_video` undoes it. GIF and NPY keep the exact size.
"""

import functools
import json
import math
import os
import re
import subprocess
import tempfile

import imageio.v2 as iio2
import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from sora_jax.data import world

FORMATS = ("mp4", "gif", "png", "npy")
MIN_MP4_SIDE = 128  # short side of an auto-upscaled .mp4, in pixels
MIN_SHEET_FRAME = 64  # short side of one frame in a contact sheet, in pixels
SHEET_FRAMES_PER_ROW = 8  # frames per row of a single clip's .png sheet
SEPARATOR_PX = 2
SEPARATOR_RGB = (96, 96, 96)  # grey, so black backgrounds stay visible
LABEL_PX = 14  # height of the text band above each labelled clip
MP4_QUALITY = 8  # imageio's 0-10 scale; 8 -> libx264 crf 10 (near lossless)
_UPSCALE_KEY = "video_io.upscale"  # reserved key in the mp4 comment JSON
_GIF_TAG = "video_io"  # GIF comment prefix: "video_io fps=8 frames=16"


def to_uint8(video) -> np.ndarray:
  """Maps a float video in [-1, 1] ([T, H, W, 3], any float dtype) to uint8."""
  video = np.asarray(video)
  if not np.issubdtype(video.dtype, np.floating):
    raise ValueError(f"to_uint8 expects a float video in [-1, 1], got dtype {video.dtype}")
  video = video.astype(np.float32)
  if not np.all(np.isfinite(video)):
    raise ValueError("video contains NaN or inf values; the sampler diverged")
  return np.round(np.clip((video + 1.0) * 127.5, 0, 255)).astype(np.uint8)


def format_of(path) -> str:
  """The format named by the file extension: one of FORMATS."""
  ext = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
  if ext not in FORMATS:
    raise ValueError(
        f"unsupported video extension {ext!r} in {os.fspath(path)!r}; "
        f"allowed: {', '.join('.' + f for f in FORMATS)}")
  return ext


def check_writable(path) -> None:
  """Raises ValueError unless `path` has a known extension and can be written.

  Call it before sampling, so nothing expensive runs when the output is doomed.
  """
  path = os.path.abspath(os.fspath(path))
  format_of(path)
  parent = os.path.dirname(path)
  if not os.path.isdir(parent):
    raise ValueError(f"output directory {parent!r} does not exist (for {path!r})")
  if os.path.isdir(path):
    raise ValueError(f"output path {path!r} is a directory, expected a file")
  if not os.access(parent, os.W_OK | os.X_OK):
    raise ValueError(f"output directory {parent!r} is not writable")
  try:  # os.access says yes to root even on read-only mounts.
    with tempfile.TemporaryFile(dir=parent):
      pass
  except OSError as e:
    raise ValueError(f"output directory {parent!r} is not writable: {e}") from e


def _check_frames(frames) -> np.ndarray:
  frames = np.asarray(frames)
  if frames.dtype != np.uint8:
    raise ValueError(f"frames must be uint8 (see to_uint8), got dtype {frames.dtype}")
  if frames.ndim != 4 or frames.shape[-1] != 3 or 0 in frames.shape:
    raise ValueError(f"frames must have shape [T, H, W, 3] with T, H, W > 0, got {frames.shape}")
  return frames


def _check_metadata(metadata) -> dict:
  metadata = dict(metadata or {})
  for k, v in metadata.items():
    if not isinstance(k, str) or not isinstance(v, str):
      raise ValueError(f"metadata must map str to str, got {k!r}: {v!r}")
  if _UPSCALE_KEY in metadata:
    raise ValueError(f"metadata key {_UPSCALE_KEY!r} is reserved by video_io")
  return metadata


def _upscale(frames: np.ndarray, factor: int) -> np.ndarray:
  """Nearest-neighbour upscale of [..., H, W, C] by an integer factor."""
  if factor == 1:
    return frames
  return np.repeat(np.repeat(frames, factor, axis=-3), factor, axis=-2)


def mp4_upscale_factor(height: int, width: int, upscale: int | None = None) -> int:
  """The integer factor the .mp4 writer applies to H x W frames.

  None picks the smallest factor giving a short side >= MIN_MP4_SIDE and even
  sides (yuv420p needs them even).
  """
  if upscale is None:
    factor = max(1, math.ceil(MIN_MP4_SIDE / min(height, width)))
    if (height * factor) % 2 or (width * factor) % 2:
      factor += 1
    return factor
  if not isinstance(upscale, (int, np.integer)) or isinstance(upscale, bool) or upscale < 1:
    raise ValueError(f"upscale must be None (auto) or an int >= 1, got {upscale!r}")
  if (height * upscale) % 2 or (width * upscale) % 2:
    raise ValueError(
        f"upscale={upscale} makes {height}x{width} frames "
        f"{height * upscale}x{width * upscale}; mp4 (yuv420p) needs even sides")
  return int(upscale)


def write_video(path, frames_uint8, fps: float = world.FPS,
                metadata: dict | None = None, upscale: int | None = None) -> None:
  """Writes uint8 frames [T, H, W, 3] to `path`; the extension picks the format.

  .mp4: libx264/yuv420p, nearest-upscaled by `upscale` (None = auto, see
  `mp4_upscale_factor`); `metadata` goes into the container `comment` as JSON.
  .gif: exact size and colours (<= 256 colours a frame), looping.
  .png: a contact sheet (`contact_sheet`); `metadata` goes into text chunks.
  .npy: the exact array. GIF and NPY ignore `metadata`.
  """
  fmt = format_of(path)
  frames = _check_frames(frames_uint8)
  metadata = _check_metadata(metadata)
  if not fps > 0:
    raise ValueError(f"fps must be > 0, got {fps!r}")
  check_writable(path)
  if fmt == "mp4":
    factor = mp4_upscale_factor(frames.shape[1], frames.shape[2], upscale)
    writer = functools.partial(_write_mp4, frames=_upscale(frames, factor), fps=fps,
                               metadata={**metadata, _UPSCALE_KEY: str(factor)})
  elif fmt == "gif":
    writer = functools.partial(_write_gif, frames=frames, fps=fps)
  elif fmt == "png":
    sheet = contact_sheet([frames], frames_per_row=SHEET_FRAMES_PER_ROW)
    writer = functools.partial(_write_png, image=sheet, metadata=metadata)
  else:
    writer = functools.partial(_write_npy, frames=frames)
  _atomic_write(path, fmt, writer)


def _atomic_write(path, fmt: str, writer) -> None:
  """Runs writer(tmp_path) on a temp file beside `path`, then renames it over."""
  path = os.path.abspath(os.fspath(path))
  parent, name = os.path.split(path)
  fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{name}.", suffix=f".tmp.{fmt}")
  os.close(fd)
  try:
    writer(tmp)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def _write_mp4(tmp: str, frames: np.ndarray, fps: float, metadata: dict) -> None:
  comment = json.dumps(metadata, sort_keys=True)  # ASCII, one line
  writer = iio2.get_writer(
      tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264",
      pixelformat="yuv420p", macro_block_size=1, quality=MP4_QUALITY,
      output_params=["-metadata", f"comment={comment}"], ffmpeg_log_level="error")
  try:
    for frame in frames:
      writer.append_data(frame)
  finally:
    writer.close()


def _write_gif(tmp: str, frames: np.ndarray, fps: float) -> None:
  # Pillow merges identical consecutive frames into one longer frame; the
  # comment lets read_video expand them back.
  comment = f"{_GIF_TAG} fps={fps!r} frames={len(frames)}".encode()
  iio.imwrite(tmp, frames, plugin="pillow", extension=".gif",
              duration=1000.0 / fps, loop=0, comment=comment)


def _write_png(tmp: str, image: np.ndarray, metadata: dict) -> None:
  info = PngImagePlugin.PngInfo()
  for k, v in metadata.items():
    info.add_text(k, v)
  Image.fromarray(image).save(tmp, format="PNG", pnginfo=info)


def _write_npy(tmp: str, frames: np.ndarray) -> None:
  with open(tmp, "wb") as f:
    np.save(f, frames, allow_pickle=False)


def read_video(path, size: tuple[int, int] | None = None) -> np.ndarray:
  """Reads a .mp4, .gif or .npy clip back as uint8 [T, H, W, 3].

  An .mp4 is downscaled (block mean) by the factor its writer stored, or, when
  `size=(H, W)` is given, by the factor that maps it to that size.
  """
  path = os.fspath(path)
  fmt = format_of(path)
  if not os.path.isfile(path):
    raise ValueError(f"no such video file: {path!r}")
  if fmt == "png":
    raise ValueError(f"{path!r} is a .png contact sheet, not readable as a video; "
                     "use .mp4, .gif or .npy")
  if fmt == "npy":
    frames = np.load(path, allow_pickle=False)
  elif fmt == "gif":
    frames = _read_gif(path)
  else:
    frames = np.stack(iio2.mimread(path, format="FFMPEG", memtest=False))
    factor = int(_read_mp4_comment(path).get(_UPSCALE_KEY, "1"))
    frames = _downscale(frames, factor, size, path)
  if size is not None and fmt != "mp4" and tuple(frames.shape[1:3]) != tuple(size):
    raise ValueError(f"{path!r} holds {frames.shape[1]}x{frames.shape[2]} frames, "
                     f"expected size={tuple(size)}")
  return _check_frames(frames)


def _downscale(frames: np.ndarray, factor: int, size, path: str) -> np.ndarray:
  """Block-mean downscale, which also averages away compression noise."""
  t, h, w, c = frames.shape
  if size is not None:
    sh, sw = size
    if sh <= 0 or sw <= 0 or h % sh or w % sw or h // sh != w // sw:
      raise ValueError(f"{path!r} holds {h}x{w} frames, which are not an integer "
                       f"upscale of size={tuple(size)}")
    factor = h // sh
  if factor < 1 or h % factor or w % factor:
    raise ValueError(f"{path!r}: upscale factor {factor} does not divide {h}x{w}")
  if factor == 1:
    return frames
  blocks = frames.reshape(t, h // factor, factor, w // factor, factor, c)
  return np.round(blocks.mean(axis=(2, 4), dtype=np.float32)).astype(np.uint8)


def _read_gif(path: str) -> np.ndarray:
  """GIF frames, with frames Pillow merged (identical neighbours) repeated back."""
  with Image.open(path) as im:
    tag = im.info.get("comment", b"").decode("ascii", "replace").split()
    fields = {}
    if tag[:1] == [_GIF_TAG]:
      fields = dict(f.split("=", 1) for f in tag[1:] if "=" in f)
    frames, durations = [], []
    for i in range(im.n_frames):
      im.seek(i)
      frames.append(np.asarray(im.convert("RGB")))
      durations.append(im.info.get("duration", 0))
  if "fps" not in fields:
    return np.stack(frames)  # a foreign GIF: frames as stored
  base = 1000.0 / float(fields["fps"])
  repeats = [max(1, round(d / base)) for d in durations]
  out = np.stack(frames).repeat(repeats, axis=0)
  if "frames" in fields and len(out) != int(fields["frames"]):
    raise ValueError(f"{path!r}: expanded {len(out)} frames from the GIF timing, "
                     f"its comment says {fields['frames']}")
  return out


def _read_mp4_comment(path: str) -> dict:
  """The JSON dict in the container `comment` tag, or {} when absent.

  Read through ffmpeg's ffmetadata dump: `ffmpeg -i` alone truncates long tags.
  """
  proc = subprocess.run(
      [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", path, "-f", "ffmetadata", "-"],
      capture_output=True, text=True, errors="replace")
  for line in proc.stdout.splitlines():
    if line.startswith("comment="):
      value = re.sub(r"\\(.)", r"\1", line[len("comment="):])  # ffmetadata escapes
      try:
        parsed = json.loads(value)
      except json.JSONDecodeError:
        return {}
      return parsed if isinstance(parsed, dict) else {}
  return {}


def read_metadata(path) -> dict:
  """The `metadata` dict `write_video` stored in a .mp4 or .png ({} for others)."""
  path = os.fspath(path)
  fmt = format_of(path)
  if fmt == "mp4":
    meta = _read_mp4_comment(path)
    meta.pop(_UPSCALE_KEY, None)
    return meta
  if fmt == "png":
    with Image.open(path) as im:
      return dict(im.text)
  return {}


def contact_sheet(videos, labels=None, frames_per_row: int | None = None,
                  min_frame_px: int = MIN_SHEET_FRAME) -> np.ndarray:
  """Tiles clips into one uint8 image [H', W', 3]: a band of rows per clip.

  Each clip fills ceil(T / frames_per_row) rows (None = one row per clip),
  frames nearest-upscaled to >= min_frame_px, grey separators between them,
  and an optional text label above each clip.
  """
  videos = [_check_frames(v) for v in videos]
  if not videos:
    raise ValueError("contact_sheet needs at least one video")
  if len({v.shape[1:] for v in videos}) != 1:
    raise ValueError(f"all videos must share H, W; got {[v.shape for v in videos]}")
  if labels is not None and len(labels) != len(videos):
    raise ValueError(f"got {len(labels)} labels for {len(videos)} videos")
  per_row = max(len(v) for v in videos) if frames_per_row is None else frames_per_row
  if not isinstance(per_row, (int, np.integer)) or per_row < 1:
    raise ValueError(f"frames_per_row must be >= 1 or None, got {frames_per_row!r}")
  _, h, w, _ = videos[0].shape
  factor = max(1, math.ceil(min_frame_px / min(h, w)))
  fh, fw, sep = h * factor, w * factor, SEPARATOR_PX
  band = LABEL_PX + sep if labels is not None else 0  # text, then a separator
  rows = [math.ceil(len(v) / per_row) for v in videos]
  sheet = np.empty((sep + sum(r * (fh + sep) + band for r in rows),
                    sep + per_row * (fw + sep), 3), np.uint8)
  sheet[:] = SEPARATOR_RGB
  top = sep
  for i, video in enumerate(videos):
    if band:
      sheet[top:top + LABEL_PX, sep:-sep] = 0
      _draw_label(sheet, str(labels[i]), top)
      top += band
    for j, frame in enumerate(_upscale(video, factor)):
      y = top + (j // per_row) * (fh + sep)
      x = sep + (j % per_row) * (fw + sep)
      sheet[y:y + fh, x:x + fw] = frame
    top += rows[i] * (fh + sep)
  return sheet


def _draw_label(sheet: np.ndarray, text: str, top: int) -> None:
  """Draws `text` in white at row `top` of `sheet`, in place (clipped at the edge)."""
  image = Image.fromarray(sheet)
  ImageDraw.Draw(image).text((SEPARATOR_PX + 2, top + 1), text, fill=(255, 255, 255),
                             font=ImageFont.load_default())
  sheet[:] = np.asarray(image)


def write_sheet(path, videos, labels=None) -> None:
  """One .png contact sheet of several clips (a band per clip), written atomically."""
  if format_of(path) != "png":
    raise ValueError(f"a contact sheet is a .png, got {path!r}")
  check_writable(path)
  sheet = contact_sheet(videos, labels=labels, frames_per_row=SHEET_FRAMES_PER_ROW)
  _atomic_write(path, "png", functools.partial(_write_png, image=sheet, metadata={}))
