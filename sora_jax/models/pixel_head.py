"""A few 3x3 convs at full resolution that refine a patch model's output (opt-in).

Why: a token of width D draws a whole patch (4 x 8 x 8 x 3 = 768 numbers in the tiny recipe)
through the output layer, so sharp edges inside a patch are hard to draw, and the noisy pixels
reach the output only through the patch embedding's D-dim bottleneck. In the DiT the head sees
the model's inputs pixel by pixel (noisy clip, known frames) and the coarse prediction, plus a
bias from each pixel's token (which carries time and caption), and adds a correction; pixel-space
diffusion models with large patches add such a pixel decoder for the same reason (DiP, DeCo,
PixNerd). The VAE's decoder, which draws 4 x 4 x 4 patches from its stem, can end in one too
(no inputs there: it sharpens the decoded clip). The last conv is zero-initialised: at step 0 the
output is the patch model's.

Measured on the shapes recipe (experiments/STUDIES.md, "More levers"): a held-out clip denoised in
one step from SNR 27 keeps its shape on 0.94 of clips with the head against 0.47 without, yet
text-to-video samples came out worse (held-out direction 0.30 against 0.91), so the recipe does not
use it. In the VAE (configs/vae_tiny.py) it lifted held-out PSNR from 27.6 to 29.5 dB and the clips
that keep every attribute from 0.92 to 0.98 at 4,000 steps.
"""

import math

import jax
import jax.numpy as jnp
from flax import nnx

from sora_jax.diffusion import self_condition
from sora_jax.models import layers, patching, vae  # vae: CausalConv3d (vae.py imports this file)

KERNEL = (1, 3, 3)  # per frame: the transformer already mixes frames
DEFAULT_LAYERS = 3  # model.pixel_head_layers when a config lacks it


class PixelHead(nnx.Module):
  """coarse [B, T, H, W, C], inputs [B, T, H, W, Ci] (None: none, as in a VAE decoder), tokens
  [B, N, D] (the last block's features; None when dim = 0) -> refined [B, T, H, W, C]."""

  def __init__(self, in_channels, channels, dim, *, hidden, num_layers=DEFAULT_LAYERS, rngs,
               dtype, param_dtype):
    if num_layers < 2:
      raise ValueError(f"pixel_head_layers must be >= 2, got {num_layers}")
    kw = dict(dtype=dtype, param_dtype=param_dtype)
    self.token_bias = layers.dense(dim, hidden, ("embed", None), rngs, **kw) if dim else None
    widths = _widths(in_channels, channels, hidden, num_layers)
    self.convs = nnx.List([vae.CausalConv3d(a, b, KERNEL, rngs=rngs, **kw)
                           for a, b in zip(widths[:-2], widths[1:-1])])
    self.out = vae.CausalConv3d(hidden, channels, KERNEL, rngs=rngs, zero=True, **kw)

  def __call__(self, coarse, inputs=None, tokens=None, patch=None, grid=None):
    h = coarse if inputs is None else jnp.concatenate([inputs.astype(coarse.dtype), coarse], -1)
    for i, conv in enumerate(self.convs):
      h = conv(h)
      if i == 0 and self.token_bias is not None:
        h = h + self._token_bias(tokens, patch, grid)
      h = jax.nn.silu(h)
    return coarse + self.out(h).astype(coarse.dtype)

  def _token_bias(self, tokens, patch, grid):
    """[B, N, hidden], the same for every pixel of a token's patch -> [B, T, H, W, hidden]."""
    bias = self.token_bias(tokens)
    bias = jnp.broadcast_to(bias[:, :, None], (*bias.shape[:2], math.prod(patch), bias.shape[-1]))
    return patching.unpatchify(bias.reshape(*bias.shape[:2], -1), patch, grid, bias.shape[-1])


def from_config(cfg, in_channels, dim, *, rngs, **kw) -> PixelHead | None:
  """The head a model or VAE config asks for (`pixel_head` channels, 0: none)."""
  if not cfg.get("pixel_head", 0):
    return None
  return PixelHead(in_channels, cfg.channels, dim, hidden=cfg.pixel_head,
                   num_layers=cfg.get("pixel_head_layers", DEFAULT_LAYERS), rngs=rngs, **kw)


def _widths(in_channels, channels, hidden, num_layers) -> list[int]:
  """Channels into and out of each conv: inputs + coarse, hidden ..., the prediction."""
  return [in_channels + channels] + [hidden] * (num_layers - 1) + [channels]


def macs_per_pixel(model_cfg) -> int:
  """Multiply-adds of a DiT's head convs at one output pixel (for models.flops)."""
  hidden = model_cfg.get("pixel_head", 0)
  if not hidden:
    return 0
  widths = _widths(self_condition.input_channels(model_cfg), model_cfg.channels, hidden,
                   model_cfg.get("pixel_head_layers", DEFAULT_LAYERS))
  return math.prod(KERNEL) * sum(a * b for a, b in zip(widths[:-1], widths[1:]))
