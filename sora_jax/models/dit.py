"""VideoDiT: a diffusion transformer over spacetime patch tokens, conditioned on text and time.

Every token attends to every other token of the clip (full spacetime attention with 3D RoPE), so
the model sees all frames at once - the "foresight" that keeps subjects consistent - and one set of
weights serves images and videos of any duration, resolution and aspect ratio.
"""

import math

import jax
import jax.numpy as jnp
from flax import nnx

from sora_jax.diffusion import known_frames, self_condition
from sora_jax.models import layers, long_skips, patching, pixel_head, precision, rope, routing
from sora_jax.models.text import TextEncoder
from sora_jax.parallel.rules import constrain

TIME_FEATURES = 256


class DiTBlock(nnx.Module):
  """Self-attention + cross-attention to text + MLP, with adaLN-Zero modulation by `c`."""

  def __init__(self, dim, num_heads, mlp_ratio, rngs, *, attention="full", dtype, param_dtype):
    kw = dict(dtype=dtype, param_dtype=param_dtype)
    self.norm1 = layers.layer_norm(dim, rngs)
    self.attn = layers.Attention(dim, num_heads, rngs, impl=attention, **kw)
    self.norm_cross = layers.layer_norm(dim, rngs, affine=True, param_dtype=param_dtype)
    self.cross = layers.Attention(dim, num_heads, rngs, **kw)
    self.norm2 = layers.layer_norm(dim, rngs)
    self.mlp = layers.Mlp(dim, int(dim * mlp_ratio), rngs, **kw)
    # Zero-initialised modulation: every block starts as the identity (adaLN-Zero).
    self.ada = layers.dense(dim, 6 * dim, ("embed", "mlp"), rngs, zero=True, **kw)

  def __call__(self, x, c, text, text_mask, angles):
    shift1, scale1, gate1, shift2, scale2, gate2 = jnp.split(self.ada(jax.nn.silu(c)), 6, -1)
    h = layers.modulate(self.norm1(x), shift1, scale1)
    x = x + layers.per_token(gate1, x.shape[1]) * self.attn(h, angles=angles)
    x = x + self.cross(self.norm_cross(x), context=text, mask=text_mask)
    h = layers.modulate(self.norm2(x), shift2, scale2)
    x = x + layers.per_token(gate2, x.shape[1]) * self.mlp(h)
    return constrain(x, ("batch", "tokens", "embed"))


class VideoDiT(nnx.Module):
  """Noisy video [B, T, H, W, C], time t in [0, 1], text bytes [B, L] -> prediction like x.

  t is [B] (one noise level per clip) or [B, T] (one per frame, constant within each temporal
  patch): frames at different noise levels are what image-to-video, extension and staggered
  (causal) sampling need, and training on them teaches the model how frames follow each other.
  """

  def __init__(self, cfg, *, text_len: int, rngs: nnx.Rngs):
    dtype, param_dtype = jnp.dtype(cfg.dtype), jnp.dtype(cfg.param_dtype)
    kw = dict(dtype=dtype, param_dtype=param_dtype)
    dim = cfg.width
    self.patch, self.channels, self.remat = tuple(cfg.patch), cfg.channels, cfg.remat
    self.head_dim, self.rope_theta = dim // cfg.num_heads, cfg.rope_theta
    self.abs_pos = cfg.get("abs_pos", False)  # checkpoints from before the key trained without
    # known frames (image-to-video, extension, ...) as C + 1 extra input channels
    self.known_frames = cfg.get("known_frames", False)
    # the previous step's x0 estimate as C more input channels (diffusion/self_condition.py)
    self.self_condition = self_condition.enabled(cfg)
    rope.axis_dims(self.head_dim)  # validates the head dimension early
    # training only: a share of the tokens skips blocks [start, end) (models/routing.py)
    self.route, self.route_keep = routing.from_config(cfg)
    # U-ViT long skips: deep block i also reads shallow block depth - 1 - i (models/long_skips.py)
    self.skips = tuple(long_skips.mirrors(cfg.depth).items()) if cfg.get("long_skips") else ()
    if self.skips:
      long_skips.check(cfg.depth, self.route)
    patch_dim = math.prod(self.patch) * cfg.channels
    in_channels = self_condition.input_channels(cfg)
    self.patch_embed = layers.dense(math.prod(self.patch) * in_channels, dim, ("patch", "embed"),
                                    rngs, **kw)
    self.time_in = layers.dense(TIME_FEATURES, dim, (None, "embed"), rngs, **kw)
    self.time_out = layers.dense(dim, dim, ("embed", None), rngs, **kw)
    self.text = TextEncoder(cfg, text_len, dim, rngs, **kw)
    self.text_pool = layers.dense(dim, dim, ("embed", None), rngs, **kw)
    self.blocks = nnx.List([
        DiTBlock(dim, cfg.num_heads, cfg.mlp_ratio, rngs, attention=cfg.get("attention", "full"),
                 **kw) for _ in range(cfg.depth)])
    self.skip_joins = nnx.Dict({str(deep): long_skips.SkipJoin(dim, rngs, **kw)
                                for deep, _ in self.skips}) if self.skips else None
    self.final_norm = layers.layer_norm(dim, rngs)
    self.final_ada = layers.dense(dim, 2 * dim, ("embed", None), rngs, zero=True, **kw)
    # The output layer maps features linearly to a patch, so every patch it draws lies in a
    # `width`-dim subspace: for a 768-number pixel patch and width 256 that leaves no sharp
    # edges. A GELU layer of `head_hidden` >= patch size before it lifts the limit.
    hidden = cfg.get("head_hidden", 0)
    self.head = layers.dense(dim, hidden, ("embed", "mlp"), rngs, **kw) if hidden else None
    self.final = layers.dense(hidden or dim, patch_dim, ("mlp" if hidden else "embed", "patch"),
                              rngs, zero=True, **kw)
    # convs at full resolution after unpatchify (pixel_head.py): sharp edges inside a patch
    self.pixel_head = pixel_head.from_config(cfg, in_channels, dim, rngs=rngs, **kw)
    # bfloat16 operands in every dense layer when asked (models/precision.py); checkpoints from
    # before the key multiplied in float32
    precision.apply(self, cfg.get("matmul_dtype", "float32"))

  def __call__(self, x, t, text, known=None, mask=None, estimate=None, route_key=None):
    """known [B, T, H, W, C] / mask [B, T]: frames given clean (see diffusion.known_frames).
    estimate [B, T, H, W, C]: the previous x0 estimate (diffusion.self_condition; None: zeros).
    route_key: training with model.route_blocks draws the tokens that skip blocks with it."""
    if route_key is not None and self.route is None:
      raise ValueError("this model was built without model.route_blocks: it routes no tokens")
    grid = patching.grid_shape(x.shape, self.patch)
    if self.known_frames:
      x = known_frames.model_inputs(x, known, mask)
    elif known is not None:
      raise ValueError("this model was built without model.known_frames: it cannot take frames")
    if self.self_condition:
      x = self_condition.model_inputs(x, estimate, self.channels)
    elif estimate is not None:
      raise ValueError("this model was built without model.self_condition: it takes no estimate")
    inputs = x
    tokens = patching.patchify(x, self.patch)  # [B, N, pt*ph*pw*C_in]
    coords = patching.grid_coords(grid)  # [N, 3]
    h = self.patch_embed(tokens)
    if self.abs_pos:
      h = h + rope.sincos_embedding(coords, h.shape[-1]).astype(h.dtype)
    h = constrain(h, ("batch", "tokens", "embed"))
    angles = rope.frequencies(coords, self.head_dim, self.rope_theta)
    context, text_mask, pooled = self.text(text)
    c = self.time_out(jax.nn.silu(self.time_in(
        layers.timestep_embedding(self._patch_times(t, grid), TIME_FEATURES))))
    c = c + self.text_pool(pooled)[:, None]  # [B, T', D]: time per frame patch + caption summary
    h = self._blocks(h, c, context, text_mask, angles, route_key)
    shift, scale = jnp.split(self.final_ada(jax.nn.silu(c)), 2, -1)
    h = layers.modulate(self.final_norm(h), shift, scale)
    out = self.final(h if self.head is None else jax.nn.gelu(self.head(h), approximate=True))
    out = patching.unpatchify(out.astype(jnp.float32), self.patch, grid, self.channels)
    if self.pixel_head is not None:
      out = self.pixel_head(out, inputs, h, self.patch, grid)
    return out

  def _blocks(self, h, c, context, text_mask, angles, route_key):
    """The DiT blocks over tokens h [B, N, D]; with a route key the blocks in the route's span
    see only `route_keep` of each temporal patch's tokens (c [B, T', D] has one row a patch)."""
    start, end = self.route if route_key is not None else (-1, -1)
    full_h, full_angles, idx = h, angles, None
    skips, shallow_outputs = dict(self.skips), {}  # {deep block: its shallow block}
    for i, block in enumerate(self.blocks):
      if i in skips:
        h = self.skip_joins[str(i)](h, shallow_outputs.pop(skips[i]))
      if i == start:
        groups = c.shape[1]
        idx = routing.pick(route_key, h.shape[0], groups, h.shape[1] // groups, self.route_keep)
        full_h, h, angles = h, routing.gather(h, idx), routing.gather(full_angles, idx)
      if self.remat:
        h = nnx.remat(lambda b, *a: b(*a))(block, h, c, context, text_mask, angles)
      else:
        h = block(h, c, context, text_mask, angles)
      if i in skips.values():
        shallow_outputs[i] = h
      if i == end - 1:
        h, angles = routing.scatter(full_h, h, idx), full_angles
    return h

  def _patch_times(self, t, grid):
    """t [B] or [B, T] -> [B, T']: the noise level of each temporal patch (its frames' mean)."""
    gt, pt = grid[0], self.patch[0]
    if t.ndim == 1:
      return jnp.broadcast_to(t[:, None], (t.shape[0], gt))
    if t.shape[1] != gt * pt:
      raise ValueError(f"t has {t.shape[1]} frame times for a clip of {gt * pt} frames")
    return t.reshape(t.shape[0], gt, pt).mean(-1)
