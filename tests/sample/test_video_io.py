"""Round trips and failure modes of sora_jax/sample/video_io.py."""

import os

import imageio.v2 as iio2
import numpy as np
import pytest
from PIL import Image

from sora_jax.data import world
from sora_jax.sample import video_io


def shapes_clip(frames=16, size=32):
  """A clip [T, H, W, 3] with every palette colour: bars plus a moving square."""
  video = np.zeros((frames, size, size, 3), np.uint8)
  colours = list(world.PALETTE.values())
  for i, rgb in enumerate(colours[1:]):
    video[:, size - 4:, 4 * i:4 * i + 4] = rgb  # a static row of colour swatches
  yy, xx = np.mgrid[:size, :size]
  for t in range(frames):
    video[t, 4:12, t:t + 8] = colours[0]
    video[t][(yy - 18) ** 2 + (xx - 16) ** 2 <= 16] = world.PALETTE["cyan"]
  return video


def test_to_uint8_maps_range_clips_and_rounds():
  x = np.array([-1.5, -1.0, 0.0, 1.0, 2.0], np.float16).reshape(1, 1, 5, 1).repeat(3, -1)
  out = video_io.to_uint8(x)
  assert out.dtype == np.uint8
  np.testing.assert_array_equal(out[0, 0, :, 0], [0, 0, 128, 255, 255])
  with pytest.raises(ValueError, match="float"):
    video_io.to_uint8(np.zeros((1, 2, 2, 3), np.uint8))
  with pytest.raises(ValueError, match="NaN"):
    video_io.to_uint8(np.full((1, 2, 2, 3), np.nan, np.float32))


def test_format_of_and_bad_extension():
  assert [video_io.format_of(f"a/b.{f}") for f in video_io.FORMATS] == list(video_io.FORMATS)
  assert video_io.format_of("CLIP.MP4") == "mp4"
  for bad in ("x.avi", "x", "x.mp4.tmp"):
    with pytest.raises(ValueError, match=r"allowed: \.mp4, \.gif, \.png, \.npy"):
      video_io.format_of(bad)
  with pytest.raises(ValueError, match="'avi'"):
    video_io.write_video("x.avi", shapes_clip())


def test_unwritable_destinations_are_rejected(tmp_path):
  with pytest.raises(ValueError, match="does not exist"):
    video_io.check_writable(tmp_path / "missing" / "a.mp4")
  (tmp_path / "file").write_text("x")
  with pytest.raises(ValueError, match="does not exist"):
    video_io.check_writable(tmp_path / "file" / "a.mp4")
  (tmp_path / "dir.mp4").mkdir()
  with pytest.raises(ValueError, match="is a directory"):
    video_io.check_writable(tmp_path / "dir.mp4")
  with pytest.raises(ValueError, match="does not exist"):
    video_io.write_video(tmp_path / "missing" / "a.npy", shapes_clip())
  video_io.check_writable(tmp_path / "ok.gif")  # no error
  assert sorted(os.listdir(tmp_path)) == ["dir.mp4", "file"]


def test_read_only_directory_is_rejected(tmp_path):
  if os.geteuid() == 0:  # root ignores permissions; a read-only mount still says no
    if not os.path.isdir("/proc/self"):
      pytest.skip("needs /proc")
    target = "/proc/self/clip.mp4"
  else:
    (tmp_path / "ro").mkdir()
    os.chmod(tmp_path / "ro", 0o500)
    target = tmp_path / "ro" / "clip.mp4"
  with pytest.raises(ValueError, match="not writable"):
    video_io.check_writable(target)


def test_npy_round_trip_is_exact(tmp_path):
  video = shapes_clip()
  video_io.write_video(tmp_path / "a.npy", video, metadata={"ignored": "yes"})
  np.testing.assert_array_equal(video_io.read_video(tmp_path / "a.npy"), video)


def test_gif_round_trip_is_exact_with_repeated_frames(tmp_path):
  video = shapes_clip()
  video[5:9] = video[4]  # Pillow merges identical neighbours; the reader expands them
  video_io.write_video(tmp_path / "a.gif", video)
  np.testing.assert_array_equal(video_io.read_video(tmp_path / "a.gif"), video)
  still = np.repeat(video[:1], 16, axis=0)
  video_io.write_video(tmp_path / "still.gif", still)
  np.testing.assert_array_equal(video_io.read_video(tmp_path / "still.gif", size=(32, 32)), still)


def test_mp4_round_trip_is_close_and_upscaled(tmp_path):
  video = shapes_clip()
  path = tmp_path / "a.mp4"
  meta = {"prompt": 'a red square moves right: "x" é', "seed": "0",
          "manifest": "{\"long\": \"" + "x" * 3000 + "\"}\n=;#\\"}  # ffmpeg -i truncates
  video_io.write_video(path, video, metadata=meta)
  raw = np.stack(iio2.mimread(path, format="FFMPEG"))
  assert raw.shape == (16, 128, 128, 3)  # 32 px frames upscaled 4x
  back = video_io.read_video(path)
  assert back.shape == video.shape and back.dtype == np.uint8
  assert np.abs(back.astype(int) - video).mean() < 12
  np.testing.assert_array_equal(video_io.read_video(path, size=(32, 32)), back)
  assert video_io.read_metadata(path) == meta
  with pytest.raises(ValueError, match="not an integer upscale"):
    video_io.read_video(path, size=(30, 30))


def test_mp4_upscale_factor():
  assert video_io.mp4_upscale_factor(32, 32) == 4
  assert video_io.mp4_upscale_factor(64, 48) == 3
  assert video_io.mp4_upscale_factor(256, 256) == 1
  assert video_io.mp4_upscale_factor(33, 35) == 4  # 4 not 3: yuv420p needs even sides
  assert video_io.mp4_upscale_factor(32, 32, upscale=2) == 2
  for bad in (0, 1.5, True):
    with pytest.raises(ValueError, match="upscale must be"):
      video_io.mp4_upscale_factor(32, 32, upscale=bad)
  with pytest.raises(ValueError, match="even sides"):
    video_io.mp4_upscale_factor(33, 32, upscale=1)


def test_mp4_explicit_upscale(tmp_path):
  video = shapes_clip(frames=4)
  video_io.write_video(tmp_path / "b.mp4", video, upscale=2, fps=4)
  assert iio2.mimread(tmp_path / "b.mp4", format="FFMPEG")[0].shape == (64, 64, 3)
  assert video_io.read_video(tmp_path / "b.mp4").shape == video.shape


def test_png_sheet_shape_and_metadata(tmp_path):
  video_io.write_video(tmp_path / "a.png", shapes_clip(), metadata={"prompt": "p"})
  with Image.open(tmp_path / "a.png") as im:
    sheet, text = np.asarray(im.convert("RGB")), dict(im.text)
  # 16 frames, 8 a row, each 32 px frame upscaled 2x to 64 px, 2 px separators.
  assert sheet.shape == (2 + 2 * (64 + 2), 2 + 8 * (64 + 2), 3)
  first = np.repeat(np.repeat(shapes_clip()[0], 2, 0), 2, 1)
  np.testing.assert_array_equal(sheet[2:66, 2:66], first)
  assert text == {"prompt": "p"} == video_io.read_metadata(tmp_path / "a.png")
  with pytest.raises(ValueError, match="contact sheet"):
    video_io.read_video(tmp_path / "a.png")


def test_contact_sheet_of_several_videos():
  clips = [shapes_clip(), shapes_clip(frames=10)]
  sheet = video_io.contact_sheet(clips, labels=["first prompt", "second"])
  band = video_io.LABEL_PX + 2
  assert sheet.shape == (2 + 2 * (band + 64 + 2), 2 + 16 * (64 + 2), 3)
  assert video_io.contact_sheet(clips).shape == (2 + 2 * (64 + 2), 2 + 16 * (64 + 2), 3)
  with pytest.raises(ValueError, match="share H, W"):
    video_io.contact_sheet([shapes_clip(), shapes_clip(size=16)])
  with pytest.raises(ValueError, match="2 labels for 1 videos"):
    video_io.contact_sheet(clips[:1], labels=["a", "b"])
  assert video_io.contact_sheet(clips, frames_per_row=4).shape[0] == 2 + (4 + 3) * (64 + 2)
  with pytest.raises(ValueError, match="frames_per_row"):
    video_io.contact_sheet(clips, frames_per_row=0)


def test_bad_inputs_are_rejected(tmp_path):
  with pytest.raises(ValueError, match="uint8"):
    video_io.write_video(tmp_path / "a.gif", shapes_clip().astype(np.float32))
  with pytest.raises(ValueError, match=r"\[T, H, W, 3\]"):
    video_io.write_video(tmp_path / "a.gif", shapes_clip()[0])
  with pytest.raises(ValueError, match="str to str"):
    video_io.write_video(tmp_path / "a.mp4", shapes_clip(), metadata={"seed": 0})
  with pytest.raises(ValueError, match="no such video"):
    video_io.read_video(tmp_path / "missing.npy")
  assert os.listdir(tmp_path) == []


def test_writes_are_atomic(tmp_path, monkeypatch):
  video = shapes_clip()
  for fmt in video_io.FORMATS:
    video_io.write_video(tmp_path / f"a.{fmt}", video)
  assert sorted(os.listdir(tmp_path)) == [f"a.{f}" for f in sorted(video_io.FORMATS)]
  umask = os.umask(0)
  os.umask(umask)
  assert os.stat(tmp_path / "a.mp4").st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600

  def crash(tmp, frames):
    with open(tmp, "wb") as f:
      f.write(b"half a file")
    raise RuntimeError("disk on fire")

  monkeypatch.setattr(video_io, "_write_npy", crash)
  with pytest.raises(RuntimeError, match="disk on fire"):
    video_io.write_video(tmp_path / "a.npy", video[::-1])
  np.testing.assert_array_equal(video_io.read_video(tmp_path / "a.npy"), video)  # old file intact
  assert sorted(os.listdir(tmp_path)) == [f"a.{f}" for f in sorted(video_io.FORMATS)]
