"""Causal 3D convolutional VAE: the video compression network the DiT works in.

Video [B, T, H, W, C] in [-1, 1] -> latents [B, 1 + (T - 1) / ft, H / fh, W / fw, Cz] and back.
Every convolution is causal in time (padded only on the past side) and every norm is per position,
so the first frame is encoded on its own: an image is a one-frame video, and 1 + k * ft frames map
exactly to 1 + k latent frames. Causality also makes chunked processing exact: a long video is run
a few latent frames at a time, each conv carrying the last frames of its input to the next chunk.
"""

import math

import jax
import jax.numpy as jnp
from flax import nnx

from sora_jax.models import pixel_head

LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0
_CONV_AXES = (None, None, None, "conv_in", "conv_out")
_lecun = nnx.initializers.lecun_normal()
_zeros = nnx.initializers.zeros_init()


def check_frames(frames: int, ft: int) -> None:
  """Raises unless `frames` == 1 + k * ft: the counts the causal VAE maps to whole latent frames."""
  if frames < 1 or (frames - 1) % ft:
    below = 1 + (max(frames, 1) - 1) // ft * ft
    raise ValueError(
        f"clip has {frames} frames; the VAE needs 1 + k * {ft} frames (e.g. {below} or "
        f"{below + ft}); pad with vae.pad_frames")


def pad_frames(video, ft: int):
  """Repeats the last frame of video [B, T, ...] up to the next 1 + k * ft; -> (padded, added)."""
  frames = video.shape[1]
  added = (latent_frames(frames, ft) - 1) * ft + 1 - frames
  if added:
    video = jnp.concatenate([video, jnp.repeat(video[:, -1:], added, axis=1)], axis=1)
  return video, added


def latent_frames(frames: int, ft: int) -> int:
  """Latent frames of a `frames`-frame clip (after padding it with `pad_frames`)."""
  if frames < 1:
    raise ValueError(f"clip has {frames} frames; it needs at least 1")
  return 1 + -(-(frames - 1) // ft)


def kl_divergence(mean, logvar):
  """KL(N(mean, exp(logvar)) || N(0, I)) per example [B], averaged over latent elements."""
  mean, logvar = mean.astype(jnp.float32), logvar.astype(jnp.float32)
  kl = 0.5 * (jnp.square(mean) + jnp.exp(logvar) - 1.0 - logvar)
  return kl.reshape(kl.shape[0], -1).mean(-1)


class _Stream:
  """Temporal caches of the causal convs for one chunk, read and written in call order.

  `past` holds the caches the previous chunk wrote (None for the first chunk: zero padding);
  `next` collects this chunk's. A model called with stream=None runs the whole clip at once.
  """

  def __init__(self, past=None):
    self.past, self.next = past, []

  @property
  def first(self) -> bool:
    return self.past is None

  def read(self):
    """The cache the previous chunk wrote at this point of the call order."""
    return self.past[len(self.next)]

  def write(self, frames):
    self.next.append(frames)


class CausalConv3d(nnx.Module):
  """3D conv on [B, T, H, W, C]: SAME-like in space, causal in time.

  Output frame j sees input frames [st * j - kt + 1, st * j]; frames before the clip are zeros.
  With kernel == stride in time (temporal downsampling) windows never straddle chunks, so only
  convs with kt > st keep a cache of their last kt - st input frames.
  """

  def __init__(self, in_ch, out_ch, kernel, stride=(1, 1, 1), *, rngs, dtype, param_dtype,
               zero=False):
    if kernel[0] < stride[0]:
      raise ValueError(f"temporal kernel {kernel[0]} is shorter than its stride {stride[0]}")
    self.kernel, self.stride, self.dtype = tuple(kernel), tuple(stride), dtype
    init = nnx.with_partitioning(_zeros if zero else _lecun, _CONV_AXES)
    self.w = nnx.Param(init(rngs.params(), (*kernel, in_ch, out_ch), param_dtype))
    self.b = nnx.Param(nnx.with_partitioning(_zeros, ("conv_out",))(
        rngs.params(), (out_ch,), param_dtype))

  def __call__(self, x, stream=None):
    kt, kh, kw = self.kernel
    st, sh, sw = self.stride
    x = x.astype(self.dtype)
    if stream is None or stream.first:
      past = jnp.zeros((x.shape[0], kt - 1, *x.shape[2:]), x.dtype)  # before the clip
    else:
      past = stream.read() if kt > st else x[:, :0]  # kernel == stride: windows align with chunks
    x = jnp.concatenate([past, x], axis=1)  # [B, past + T, H, W, C]
    if stream is not None and kt > st:
      stream.write(x[:, x.shape[1] - (kt - st):])
    b, frames, h, w, c = x.shape
    t = (frames - kt) // st + 1
    # The kt frames each output frame sees, stacked on channels: [B, T', H, W, kt * C]; XLA's
    # CPU backend runs 2D convs and matmuls several times faster than 3D convs.
    cols = jnp.concatenate([x[:, i:i + st * (t - 1) + 1:st] for i in range(kt)], axis=-1)
    kernel = self.w[...].astype(self.dtype).transpose(1, 2, 0, 3, 4).reshape(kh, kw, kt * c, -1)
    if (kh, kw, sh, sw) == (1, 1, 1, 1):
      y = cols @ kernel[0, 0]
    else:
      pad = [(0, 0) if k == stride else ((k - 1) // 2, k // 2)  # kernel == stride: patches
             for k, stride in ((kh, sh), (kw, sw))]
      y = jax.lax.conv_general_dilated(
          cols.reshape(b * t, h, w, kt * c), kernel, (sh, sw), pad,
          dimension_numbers=("NHWC", "HWIO", "NHWC"))
      y = y.reshape(b, t, *y.shape[1:])
    return y + self.b[...].astype(self.dtype)


class ChannelNorm(nnx.Module):
  """RMS norm over channels at each position: no statistics shared across frames (causal)."""

  def __init__(self, ch, *, param_dtype):
    init = nnx.with_partitioning(nnx.initializers.ones_init(), ("conv_out",))
    self.scale = nnx.Param(init(None, (ch,), param_dtype))

  def __call__(self, x):
    h = x.astype(jnp.float32)
    h = h * jax.lax.rsqrt(jnp.mean(jnp.square(h), axis=-1, keepdims=True) + 1e-6)
    return (h * self.scale[...].astype(jnp.float32)).astype(x.dtype)


class ResBlock(nnx.Module):
  """x + (norm, SiLU, (2+1)D conv) twice, at a fixed width.

  The (2+1)D conv (1x3x3 spatial, then 3x1x1 causal temporal) costs 12 C^2 per position where a
  3x3x3 one costs 27 C^2. The last conv starts at zero, so every block starts as the identity.
  """

  def __init__(self, ch, *, rngs, **kw):
    self.norms = nnx.List([ChannelNorm(ch, param_dtype=kw["param_dtype"]) for _ in range(2)])
    self.convs = nnx.List([
        CausalConv3d(ch, ch, (1, 3, 3), rngs=rngs, **kw),
        CausalConv3d(ch, ch, (3, 1, 1), rngs=rngs, **kw),
        CausalConv3d(ch, ch, (1, 3, 3), rngs=rngs, **kw),
        CausalConv3d(ch, ch, (3, 1, 1), rngs=rngs, zero=True, **kw)])

  def __call__(self, x, stream=None):
    h = x
    for i, norm in enumerate(self.norms):
      h = jax.nn.silu(norm(h))
      h = self.convs[2 * i + 1](self.convs[2 * i](h, stream), stream)
    return x + h


class Upsample(nnx.Module):
  """x ss in space and x st in time: a conv to st * ss^2 * C channels, then depth-to-spacetime.

  Latent frame 0 stands for the first frame alone, so the first st - 1 frames of the clip (made
  from frame 0) are dropped; in chunked mode only the first chunk contains them.
  """

  def __init__(self, in_ch, out_ch, st, *, rngs, ss=2, kernel=(1, 3, 3), **kw):
    self.st, self.ss, self.out_ch = st, ss, out_ch
    self.conv = CausalConv3d(in_ch, st * ss * ss * out_ch, kernel, rngs=rngs, **kw)

  def __call__(self, x, stream=None):
    b, t, h, w, _ = x.shape
    st, ss = self.st, self.ss
    y = self.conv(x, stream).reshape(b, t, h, w, st, ss, ss, self.out_ch)
    y = y.transpose(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, t * st, ss * h, ss * w, self.out_ch)
    if self.st > 1 and (stream is None or stream.first):
      y = y[:, self.st - 1:]
    return y


class Encoder(nnx.Module):
  """Video [B, T, H, W, C] -> (mean, logvar) [B, T', H / fh, W / fw, Cz].

  Each level but the last ends in a stride-2 conv that halves H and W and, in the first log2(ft)
  levels, time too (kernel 2, stride 2: output j sees frames 2j - 1 and 2j, output 0 frame 0).
  """

  def __init__(self, cfg, *, rngs, **kw):
    widths, time_levels = cfg.widths, _time_levels(cfg)
    stem = _stem(cfg)
    if stem == (1, 1, 1):
      self.conv_in = CausalConv3d(cfg.channels, widths[0], (1, 3, 3), rngs=rngs, **kw)
    else:  # a space-time patch embedding: the heavy layers all run at the coarse resolution
      self.conv_in = CausalConv3d(cfg.channels, widths[0], stem, stem, rngs=rngs, **kw)
    self.levels = nnx.List()
    for i, (ch, blocks) in enumerate(zip(widths, _blocks(cfg))):
      level = [ResBlock(ch, rngs=rngs, **kw) for _ in range(blocks)]
      if i + 1 < len(widths):
        st = 2 if i < time_levels else 1
        level.append(CausalConv3d(ch, widths[i + 1], (st, 3, 3), (st, 2, 2), rngs=rngs, **kw))
      self.levels.append(nnx.List(level))
    self.norm_out = ChannelNorm(widths[-1], param_dtype=kw["param_dtype"])
    self.conv_out = CausalConv3d(widths[-1], 2 * cfg.latent_channels, (3, 3, 3), rngs=rngs, **kw)

  def __call__(self, x, stream=None):
    h = self.conv_in(x, stream)
    for level in self.levels:
      for layer in level:
        h = layer(h, stream)
    h = self.conv_out(jax.nn.silu(self.norm_out(h)), stream).astype(jnp.float32)
    mean, logvar = jnp.split(h, 2, axis=-1)
    return mean, jnp.clip(logvar, LOGVAR_MIN, LOGVAR_MAX)


class Decoder(nnx.Module):
  """Latents [B, T', h, w, Cz] -> video [B, 1 + (T' - 1) * ft, h * fh, w * fw, C] (float32).

  The encoder mirrored: levels from coarse to fine, each but the finest ending in an `Upsample`.
  """

  def __init__(self, cfg, *, rngs, **kw):
    widths, time_levels = cfg.widths, _time_levels(cfg)
    self.conv_in = CausalConv3d(cfg.latent_channels, widths[-1], (3, 3, 3), rngs=rngs, **kw)
    self.levels = nnx.List()
    for i in reversed(range(len(widths))):
      level = [ResBlock(widths[i], rngs=rngs, **kw) for _ in range(_blocks(cfg)[i])]
      if i > 0:
        st = 2 if i - 1 < time_levels else 1
        level.append(Upsample(widths[i], widths[i - 1], st, rngs=rngs, **kw))
      self.levels.append(nnx.List(level))
    self.norm_out = ChannelNorm(widths[0], param_dtype=kw["param_dtype"])
    pt, ps, _ = _stem(cfg)
    # With a stem, conv_out draws each pt x ps x ps pixel patch linearly from widths[0]
    # features: patches bigger than that are confined to a subspace and lose their edges. A
    # SiLU layer of `head_hidden` channels at each position before it lifts the limit.
    hidden = cfg.get("head_hidden", 0)
    self.head = (CausalConv3d(widths[0], hidden, (1, 1, 1), rngs=rngs, **kw) if hidden else None)
    out_in = hidden or widths[0]
    if (pt, ps) == (1, 1):
      self.conv_out = CausalConv3d(out_in, cfg.channels, (1, 3, 3), rngs=rngs, **kw)
    else:  # the stem undone: each position back to a pt x ps x ps patch of pixels
      self.conv_out = Upsample(out_in, cfg.channels, pt, ss=ps, kernel=(1, 1, 1), rngs=rngs, **kw)
    # 3x3 convs per frame at full resolution that sharpen the decoded clip (pixel_head.py)
    self.pixel_head = pixel_head.from_config(cfg, 0, 0, rngs=rngs, **kw)

  def __call__(self, z, stream=None):
    h = self.conv_in(z, stream)
    for level in self.levels:
      for layer in level:
        h = layer(h, stream)
    h = jax.nn.silu(self.norm_out(h))
    if self.head is not None:
      h = jax.nn.silu(self.head(h, stream))
    out = self.conv_out(h, stream).astype(jnp.float32)
    return out if self.pixel_head is None else self.pixel_head(out)


def _is_pow2(n) -> bool:
  return isinstance(n, int) and n >= 1 and n & (n - 1) == 0


def _stem(cfg) -> tuple:
  """(pt, ps, ps): the encoder's first patchify factor (1, 1, 1: none); old configs have none."""
  return tuple(cfg.get("stem", (1, 1, 1)))


def _time_levels(cfg) -> int:
  """Levels that halve time, after the stem took its share of ft."""
  return int(math.log2(cfg.factors[0] // _stem(cfg)[0]))


def _blocks(cfg):
  """Residual blocks per level: `blocks` is one count for every level or one per level."""
  n = len(cfg.widths)
  return tuple(cfg.blocks) if isinstance(cfg.blocks, (tuple, list)) else (cfg.blocks,) * n


def _validate(cfg):
  """Raises ValueError naming the first bad VAE config value and what is allowed."""
  factors, widths = tuple(cfg.factors), tuple(cfg.widths)
  for name in ("channels", "latent_channels"):
    if not isinstance(cfg[name], int) or cfg[name] < 1:
      raise ValueError(f"vae.{name} = {cfg[name]!r}; it must be a positive integer")
  if len(factors) != 3 or not all(_is_pow2(f) for f in factors):
    raise ValueError(f"vae.factors = {factors}; it must be (ft, fh, fw), each a power of two")
  ft, fh, fw = factors
  if fh != fw or ft > fh:
    raise ValueError(f"vae.factors = {factors}; it needs fh == fw and ft <= fh")
  stem = _stem(cfg)
  if (len(stem) != 3 or not all(_is_pow2(f) for f in stem) or stem[1] != stem[2]
      or ft % stem[0] or fh % stem[1]):
    raise ValueError(f"vae.stem = {stem}; it must be (pt, ps, ps), powers of two dividing "
                     f"vae.factors = {factors}")
  levels = int(math.log2(fh // stem[1])) + 1
  if ft // stem[0] > fh // stem[1]:
    raise ValueError(f"vae.stem = {stem} leaves more time than space to downsample in "
                     f"vae.factors = {factors}")
  if len(widths) != levels or not all(isinstance(w, int) and w >= 1 for w in widths):
    raise ValueError(
        f"vae.widths = {widths}; with fh = {fh} and stem {stem} it must be {levels} positive "
        f"integers (one per resolution level: log2(fh / stem) + 1)")
  blocks = _blocks(cfg)
  if len(blocks) != levels or not all(isinstance(n, int) and n >= 0 for n in blocks):
    raise ValueError(
        f"vae.blocks = {cfg.blocks!r}; it must be an integer >= 0 or {levels} of them "
        f"(one per level)")
  for name in ("dtype", "param_dtype"):
    try:
      jnp.dtype(cfg[name])
    except TypeError:
      raise ValueError(f"vae.{name} = {cfg[name]!r} is not a dtype (e.g. 'float32')") from None


def _chunked(fn, x, step: int):
  """fn(x_chunk, stream) over x [B, T, ...] in time: x[:, :1], then `step` frames at a time.

  The full chunks run under one lax.scan (one compiled body, however long the video), with the
  conv caches as the carry; a shorter last chunk runs on its own.
  """
  stream = _Stream()
  outs = [fn(x[:, :1], stream)]
  rest, cache = x[:, 1:], stream.next
  full = rest.shape[1] // step
  if full:
    body = rest[:, :full * step].reshape(x.shape[0], full, step, *x.shape[2:]).swapaxes(0, 1)

    def scan_fn(past, chunk):
      s = _Stream(past)
      y = fn(chunk, s)
      return s.next, y

    cache, ys = jax.lax.scan(scan_fn, cache, body)
    outs.append(jax.tree.map(lambda y: y.swapaxes(0, 1).reshape(y.shape[1], -1, *y.shape[3:]), ys))
  if rest.shape[1] > full * step:
    outs.append(fn(rest[:, full * step:], _Stream(cache)))
  return jax.tree.map(lambda *ys: jnp.concatenate(ys, axis=1), *outs)


class VideoVAE(nnx.Module):
  """Causal 3D conv VAE: video [B, T, H, W, C] <-> latents [B, T', H / fh, W / fw, Cz].

  T must be 1 + k * ft (see `pad_frames`); T' = 1 + k. The `*_chunked` methods give the same
  result while holding only `chunk` latent frames' worth of activations at a time.
  """

  def __init__(self, cfg, *, rngs: nnx.Rngs):
    _validate(cfg)
    kw = dict(dtype=jnp.dtype(cfg.dtype), param_dtype=jnp.dtype(cfg.param_dtype))
    self.channels, self.latent_channels = cfg.channels, cfg.latent_channels
    self.factors = tuple(cfg.factors)
    self.encoder = Encoder(cfg, rngs=rngs, **kw)
    self.decoder = Decoder(cfg, rngs=rngs, **kw)

  def _check_video(self, video):
    ft, fh, fw = self.factors
    if video.ndim != 5 or video.shape[-1] != self.channels:
      raise ValueError(f"video has shape {video.shape}; expected [B, T, H, W, {self.channels}]")
    check_frames(video.shape[1], ft)
    if video.shape[2] % fh or video.shape[3] % fw:
      raise ValueError(
          f"frames are {video.shape[2]}x{video.shape[3]}; height and width must be multiples "
          f"of {fh} and {fw}")

  def _check_latents(self, z):
    if z.ndim != 5 or z.shape[-1] != self.latent_channels or z.shape[1] < 1:
      raise ValueError(
          f"latents have shape {z.shape}; expected [B, T', h, w, {self.latent_channels}]")

  @staticmethod
  def _check_chunk(chunk):
    if not isinstance(chunk, int) or chunk < 1:
      raise ValueError(f"chunk = {chunk!r}; it must be a positive number of latent frames")

  def encode(self, video):
    """Video [B, T, H, W, C] -> (mean, logvar), each [B, T', h, w, Cz] float32."""
    self._check_video(video)
    return self.encoder(video)

  def decode(self, z):
    """Latents [B, T', h, w, Cz] -> video [B, 1 + (T' - 1) * ft, H, W, C] float32."""
    self._check_latents(z)
    return self.decoder(z)

  def encode_chunked(self, video, chunk: int):
    """`encode`, running frame 0 and then `chunk` * ft frames at a time."""
    self._check_video(video)
    self._check_chunk(chunk)
    return _chunked(self.encoder, video, chunk * self.factors[0])

  def decode_chunked(self, z, chunk: int):
    """`decode`, running latent frame 0 and then `chunk` latent frames at a time."""
    self._check_latents(z)
    self._check_chunk(chunk)
    return _chunked(self.decoder, z, chunk)

  def __call__(self, video, key):
    """-> (reconstruction, mean, logvar), decoding z = mean + exp(logvar / 2) * eps."""
    mean, logvar = self.encode(video)
    z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape, mean.dtype)
    return self.decode(z), mean, logvar
