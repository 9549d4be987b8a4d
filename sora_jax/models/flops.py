"""Analytic FLOPs of a VideoDiT forward pass (2 x multiply-adds; matmuls and attention only).

Training costs 3 x forward (the backward pass is 2 x forward). Counting analytically, not from XLA,
keeps model-FLOP utilisation comparable across backends and meshes.
"""

import math

from sora_jax.diffusion import self_condition
from sora_jax.models import long_skips, pixel_head, routing


def _transformer_macs(tokens, dim, hidden, context=0, context_dim=0):
  """Multiply-adds per example of one attention(+cross-attention)+MLP layer."""
  self_attn = 4 * tokens * dim * dim + 2 * tokens * tokens * dim
  cross = 0
  if context:
    cross = 2 * tokens * dim * dim + 2 * context * context_dim * dim + 2 * tokens * context * dim
  return self_attn + cross + 2 * tokens * dim * hidden


def forward_flops(model_cfg, *, frames: int, height: int, width: int, text_len: int,
                  routed: bool = False) -> int:
  """FLOPs of one example's forward pass through VideoDiT at this clip size; `routed`: a
  training pass, whose route's blocks see fewer tokens (models/routing.py)."""
  pt, ph, pw = model_cfg.patch
  groups, per_group = frames // pt, (height // ph) * (width // pw)
  tokens = groups * per_group
  d, w = model_cfg.width, model_cfg.text_width
  c = model_cfg.channels
  patch_dim = math.prod(model_cfg.patch) * c
  in_dim = math.prod(model_cfg.patch) * self_condition.input_channels(model_cfg)
  text = model_cfg.text_depth * _transformer_macs(text_len, w, 4 * w) + text_len * w * d
  span, keep = routing.from_config(model_cfg)
  span = span if routed else None
  kept = groups * routing.kept_per_group(keep, per_group)
  seen = lambda i: kept if span and span[0] <= i < span[1] else tokens  # tokens block i sees
  blocks = sum(_transformer_macs(seen(i), d, int(d * model_cfg.mlp_ratio), text_len, d)
               + 6 * d * d for i in range(model_cfg.depth))
  if model_cfg.get("long_skips", False):  # each join projects [h, skip] (2d) to d
    blocks += sum(2 * d * d * seen(deep) for deep in long_skips.mirrors(model_cfg.depth))
  hidden = model_cfg.get("head_hidden", 0)
  out = tokens * (d * hidden + hidden * patch_dim) if hidden else tokens * d * patch_dim
  # embed, output (with its GELU layer), time, pool, final adaLN
  edges = tokens * in_dim * d + out + 256 * d + 2 * d * d + 2 * d * d
  pixels = frames * height * width * pixel_head.macs_per_pixel(model_cfg)
  return 2 * (text + blocks + edges + pixels)


def train_flops(model_cfg, *, self_condition_prob: float = 0.0, **clip) -> float:
  """FLOPs of one example's train step: forward + backward (2 x forward), plus the no-gradient
  first pass of self-conditioning on that share of steps (diffusion/self_condition.py)."""
  first_pass = self_condition_prob if self_condition.enabled(model_cfg) else 0.0
  return (3 + first_pass) * forward_flops(model_cfg, routed=True, **clip)
