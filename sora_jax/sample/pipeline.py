"""Text-to-video generation from a trained workdir: restore, encode prompts, one jitted DDIM call."""

import dataclasses
import functools

import jax
import ml_collections
import numpy as np
from flax import nnx

from sora_jax.data import tokenizer
from sora_jax.diffusion import sampling
from sora_jax.models import patching
from sora_jax.parallel import mesh as mesh_lib
from sora_jax.parallel import rules as rules_lib
from sora_jax.sample import video_io
from sora_jax.train import checkpoint, state as state_lib, step as step_lib


@dataclasses.dataclass
class Generator:
  """A restored model ready to sample: its config, graph and (EMA) parameters."""
  config: ml_collections.ConfigDict
  graphdef: nnx.GraphDef
  params: nnx.State
  step: int


def load(workdir, *, use_ema: bool = True) -> Generator:
  """Restores the latest checkpoint of `workdir` (raises NoCheckpointError if there is none)."""
  ckpt = checkpoint.Checkpointer(workdir, create=False)
  step = ckpt.latest_step()
  config = ml_collections.ConfigDict(ckpt.restore_config(step))
  mesh = mesh_lib.make_mesh(config.mesh)
  rules = rules_lib.as_rules(config.mesh.rules)
  tx = state_lib.make_optimizer(config.train)
  with rules_lib.activate(mesh, rules):
    graphdef, abstract = state_lib.abstract_state(config, tx)
    shardings = state_lib.state_shardings(abstract, tx, mesh, rules)
  state = ckpt.restore(step, checkpoint.abstract_with_shardings(abstract, shardings))
  ckpt.close()
  return Generator(config, graphdef, state.ema_params if use_ema else state.params, step)


@functools.partial(jax.jit, static_argnames=("graphdef", "cfg", "shape"))
def sample_videos(params, text, uncond, key, *, graphdef, cfg: sampling.SamplerConfig, shape):
  """The whole DDIM chain under one jit: float videos in [-1, 1]."""
  return sampling.sample(nnx.merge(graphdef, params), cfg, key, shape, text, uncond)


def sampler_config(config, *, steps=None, guidance=None, eta=None,
                   stagger=None) -> sampling.SamplerConfig:
  d, s = config.diffusion, config.sample
  pick = lambda given, key: float(s.get(key, 0.0) if given is None else given)
  return sampling.SamplerConfig(
      schedule=d.schedule, shift=float(d.shift), prediction=d.prediction,
      steps=int(s.steps if steps is None else steps), guidance=pick(guidance, "guidance"),
      eta=pick(eta, "eta"), stagger=pick(stagger, "stagger"),  # older checkpoints: no stagger
      frame_noise_corr=float(d.get("frame_noise_corr", 0.0)), time_group=config.model.patch[0])


def generate(gen: Generator, prompts, *, seed: int = 0, steps=None, guidance=None, eta=None,
             stagger=None, frames=None, height=None, width=None) -> np.ndarray:
  """Videos for `prompts` in one compiled call: uint8 [N, T, H, W, 3] in prompt order."""
  prompts = [tokenizer.check_prompt(p) for p in prompts]
  if not prompts:
    raise ValueError("no prompts given: pass --prompt TEXT or --prompts FILE")
  d = gen.config.data
  frames, height, width = frames or d.frames, height or d.height, width or d.width
  patching.check_divisible(frames, height, width, gen.config.model.patch)
  cfg = sampler_config(gen.config, steps=steps, guidance=guidance, eta=eta, stagger=stagger)
  length = d.text_len + 1
  text = tokenizer.encode_batch(prompts, length)
  uncond = np.asarray(step_lib.null_text(len(prompts), length))
  shape = (len(prompts), frames, height, width, gen.config.model.channels)
  out = sample_videos(gen.params, text, uncond, jax.random.key(seed), graphdef=gen.graphdef,
                      cfg=cfg, shape=shape)
  return video_io.to_uint8(np.asarray(out))  # raises if the sampler diverged (NaN)


def provenance(gen: Generator, prompt: str, seed: int) -> dict:
  """Metadata written into every output: what made it (the start of provenance, see safety/)."""
  return {"generator": "sora_jax", "ai_generated": "true", "checkpoint_step": str(gen.step),
          "prompt": prompt, "seed": str(seed)}

