"""Text-to-video generation from a trained workdir: restore, encode prompts, one jitted DDIM call."""

import dataclasses
import functools
import os

import jax
import ml_collections
import numpy as np
from flax import nnx

from sora_jax.data import captions, pipeline as data_pipeline, tokenizer
from sora_jax.diffusion import rerank, sampling, self_condition
from sora_jax.models import latents, patching
from sora_jax.sample import video_io
from sora_jax.train import restore, step as step_lib


@dataclasses.dataclass(frozen=True)
class Guide:
  """The worse model autoguidance pushes away from (sampling.autoguided): any DiT trained on the
  same data and latent space, e.g. an earlier checkpoint of the same run."""
  graphdef: nnx.GraphDef
  params: nnx.State
  workdir: str
  step: int


@dataclasses.dataclass
class Generator:
  """A restored model ready to sample: its config, graph and (EMA) parameters, and - for a
  latent DiT - the VAE latent space it denoises (`frozen` holds the VAE's arrays)."""
  config: ml_collections.ConfigDict
  graphdef: nnx.GraphDef
  params: nnx.State
  step: int
  latent: latents.LatentSpace | None = None
  frozen: dict = dataclasses.field(default_factory=dict)
  guide: Guide | None = None  # the worse model of autoguidance, if loaded


def load(workdir, *, use_ema: bool | None = None, step: int | None = None,
         vae_workdir: str | None = None, guide_step: int | None = None,
         guide_workdir: str | None = None) -> Generator:
  """Restores checkpoint `step` (default: the latest) of `workdir` (raises NoCheckpointError if
  there is none). A latent DiT samples through `vae_workdir` if given, else the run's
  sample.vae_workdir, else the VAE it trained on (`decoding_vae`). `guide_step` /
  `guide_workdir` (default: the config's sample.guide_step, `workdir`) load autoguidance's
  worse model. `use_ema` (default: the run's sample.use_ema) picks EMA or raw parameters."""
  trained = restore.load_trained(workdir, task="dit", use_ema=use_ema, step=step)
  config = trained.config
  latent, frozen = None, {}
  if config.model.get("vae_workdir"):
    latent, frozen = latents.load(decoding_vae(config, vae_workdir))
  elif vae_workdir:
    raise ValueError(f"--vae={vae_workdir}: {workdir} holds a pixel DiT; a VAE decodes only a "
                     "latent DiT's samples")
  gen = Generator(config, trained.graphdef, trained.params, trained.step, latent, frozen)
  guide_step = config.sample.get("guide_step", 0) if guide_step is None else guide_step
  if guide_step or guide_workdir:
    gen.guide = load_guide(gen, guide_workdir or workdir, guide_step or None)
  return gen


def load_guide(gen: Generator, workdir, step: int | None) -> Guide:
  """Autoguidance's worse model: checkpoint `step` (None: the latest) of `workdir`, checked to
  denoise what `gen` denoises (the same data shapes, channels and latent space)."""
  trained = restore.load_trained(workdir, task="dit", step=step)
  ours, theirs = gen.config, trained.config
  same = lambda c: (c.model.channels, tuple(c.model.patch), c.model.get("vae_workdir"),
                    c.data.frames, c.data.height, c.data.width, c.data.text_len,
                    c.diffusion.prediction, c.model.get("known_frames", False),
                    self_condition.enabled(c.model))
  if same(ours) != same(theirs):
    raise ValueError(f"the guide {workdir} (step {trained.step}) denoises other inputs than "
                     f"this model: (channels, patch, VAE, frames, height, width, text length, "
                     f"prediction, known frames, self-conditioning) {same(theirs)} against "
                     f"{same(ours)}")
  return Guide(trained.graphdef, trained.params, os.path.abspath(workdir), trained.step)


def decoding_vae(config, override: str | None = None) -> str:
  """The VAE a latent DiT's samples go through. One other than the VAE it trained on must share
  its latent space (a decoder tuned on the same encoder: `vae.train_parts = "decoder"`), which
  its stored latent stats show: the same shift and scale, channel for channel."""
  trained_on = config.model.vae_workdir
  chosen = override or config.sample.get("vae_workdir") or trained_on
  if os.path.abspath(chosen) != os.path.abspath(trained_on):
    ours, theirs = latents.stats_of(trained_on), latents.stats_of(chosen)
    if any(ours[k] != theirs[k] for k in ("shift", "scale")):
      raise ValueError(f"the VAE in {chosen} has other latent stats than {trained_on}, which "
                       "this DiT trained on: it decodes another latent space")
  return chosen


@functools.partial(jax.jit, static_argnames=("graphdef", "cfg", "shape", "latent", "frames",
                                             "strength", "guide_graphdef"))
def sample_videos(params, text, uncond, key, frozen, start=None, contrast=None, guide_params=None,
                  rivals=None, *, graphdef, cfg: sampling.SamplerConfig, shape, latent=None,
                  frames=None, strength=1.0, guide_graphdef=None):
  """The whole DDIM chain (and the VAE decode of a latent DiT) under one jit: float videos in
  [-1, 1]. `shape` is what the DiT denoises: pixels, or latents of `frames`-frame clips.
  `start`: pixels [B, T, H, W, C] in [-1, 1] to edit at `strength` (sampling.sample);
  `contrast`: the token pair cfg.attribute_guidance weighs (contrast_prompts); `guide_params`:
  the worse model cfg.autoguidance pushes away from; `rivals`: the texts best of N scores a draw
  against (None: no text, the PMI; rival_texts)."""
  model = plain = nnx.merge(graphdef, params)
  if cfg.autoguidance:
    model = sampling.autoguided(model, nnx.merge(guide_graphdef, guide_params), cfg.autoguidance)
  if start is not None:
    start = start if latent is None else latent.encode(frozen, start)

  def tiled(repeat):
    """(shape, text, uncond, contrast) of the rows repeat(prompt array) makes: one draw, or
    cfg.candidates, a prompt."""
    pair = None if contrast is None else tuple(map(repeat, contrast))
    return (repeat(text).shape[0],) + tuple(shape[1:]), repeat(text), repeat(uncond), pair

  def draw(key, repeat):
    """The whole chain for those rows."""
    rows, cond, null, pair = tiled(repeat)
    if start is not None:
      return sampling.sample(model, cfg, key, rows, cond, null, start=repeat(start),
                             strength=strength, contrast=pair)
    run = sampling.sample_via_first_frame if cfg.first_frame_pass else sampling.sample
    return run(model, cfg, key, rows, cond, null, contrast=pair)

  def drafts(key, repeat):
    """The first-frame pass's drafts for those rows."""
    rows, cond, null, pair = tiled(repeat)
    return sampling.draft_first_frame(model, cfg, key, rows, cond, null, pair)

  shown = lambda z: z
  if latent is not None:  # score the video the latent decodes to
    shown = lambda z: latent.encode(frozen, latent.decode(frozen, z, frames))
  others = (uncond,) if rivals is None else tuple(rivals)
  best_of = lambda fn, key: rerank.best_of(plain, cfg, fn, key, shape[0], text, others, shown)
  if cfg.candidates > 1 and cfg.rerank_draft and cfg.first_frame_pass:
    k_draft, k_final = jax.random.split(key)
    out = sampling.sample_from_first_frame(model, cfg, k_final, shape, text, uncond,
                                           best_of(drafts, k_draft), contrast)
  elif cfg.candidates > 1:
    out = best_of(draw, key)
  else:
    out = draw(key, lambda v: v)
  return out if latent is None else latent.decode(frozen, out, frames)


def sampler_config(config, *, steps=None, guidance=None, eta=None, stagger=None, shift=None,
                   first_frame_pass=None, attribute_guidance=None, draft_image=None,
                   autoguidance=None, eps_scale=None, candidates=None,
                   rerank_draft=None, rerank_score=None) -> sampling.SamplerConfig:
  """The run's sampler settings (config.sample, its schedule), with the given ones overriding."""
  d, s = config.diffusion, config.sample
  pick = lambda given, key, default=0.0: float(s.get(key, default) if given is None else given)
  if first_frame_pass is None:
    first_frame_pass = s.get("first_frame_pass", False)
  if first_frame_pass and not config.model.get("known_frames", False):
    raise ValueError("--first_frame_pass needs a model trained with model.known_frames")
  if draft_image is None:
    draft_image = first_frame_pass and s.get("draft_image", False)
  elif draft_image and not first_frame_pass:
    raise ValueError("--draft_image drafts the first frame of the first-frame pass: turn that "
                     "on too (--first_frame_pass)")
  return sampling.SamplerConfig(
      schedule=d.schedule, shift=float(d.shift if shift is None else shift),
      prediction=d.prediction,
      steps=int(s.steps if steps is None else steps), guidance=pick(guidance, "guidance"),
      eta=pick(eta, "eta"), stagger=pick(stagger, "stagger"),  # older checkpoints: no stagger
      attribute_guidance=pick(attribute_guidance, "attribute_guidance"),
      autoguidance=pick(autoguidance, "autoguidance"),
      eps_scale=pick(eps_scale, "eps_scale", 1.0),  # older checkpoints: plain DDIM
      frame_noise_corr=float(d.get("frame_noise_corr", 0.0)), time_group=config.model.patch[0],
      first_frame_pass=bool(first_frame_pass),
      draft_image=bool(draft_image),
      self_condition=self_condition.enabled(config.model),
      candidates=int(s.get("candidates", 1) if candidates is None else candidates),
      rerank_levels=int(s.get("rerank_levels", 16)),
      rerank_score=str(s.get("rerank_score", "pmi") if rerank_score is None else rerank_score),
      rerank_draft=bool(s.get("rerank_draft", False) if rerank_draft is None else rerank_draft))


def generate(gen: Generator, prompts, *, seed: int = 0, steps=None, guidance=None, eta=None,
             stagger=None, shift=None, first_frame_pass=None, frames=None, height=None, width=None,
             edit=None, strength: float = 1.0, attribute_guidance=None, guided_attributes=None,
             contrast_without=None, draft_image=None, expand_prompts=None,
             autoguidance=None, eps_scale=None, candidates=None, rerank_draft=None,
             rerank_score=None) -> np.ndarray:
  """Videos for `prompts` in one compiled call: uint8 [N, T, H, W, 3] in prompt order.

  expand_prompts (None: config.sample.expand_prompts): the model sees each prompt rewritten in
  the detailed register it trained on (captions.expand_prompt, the recaptioner's hook).

  candidates (None: config.sample.candidates): draw that many videos a prompt in the same call
  and keep the one the model scores most the prompt's (diffusion/rerank.py); rerank_draft (None:
  config.sample.rerank_draft) ranks the first-frame pass's drafts instead.

  edit: uint8 [T, H, W, 3] (one video for every prompt) or [N, T, H, W, 3]: video-to-video
  editing, the clip noised to `strength` of the chain and denoised toward each prompt (its size
  sets frames, height and width)."""
  prompts = _prepared_prompts(gen, prompts, expand_prompts)
  start = None
  if edit is not None:  # the clip sets the size and gives every frame: no first-frame pass
    start = _edit_start(edit, len(prompts))
    frames, height, width = start.shape[1:4]
    if first_frame_pass or draft_image:
      raise ValueError("editing a video and --first_frame_pass / --draft_image do not combine: "
                       "the edited clip already gives every frame")
    first_frame_pass = draft_image = False
  d = gen.config.data
  frames, height, width = frames or d.frames, height or d.height, width or d.width
  dims = _denoised_dims(gen, frames, height, width)
  cfg = sampler_config(gen.config, steps=steps, guidance=guidance, eta=eta, stagger=stagger,
                       shift=shift, first_frame_pass=first_frame_pass,
                       attribute_guidance=attribute_guidance, draft_image=draft_image,
                       autoguidance=autoguidance, eps_scale=eps_scale, candidates=candidates,
                       rerank_draft=rerank_draft, rerank_score=rerank_score)
  if cfg.autoguidance and gen.guide is None:
    raise ValueError(f"autoguidance={cfg.autoguidance} needs a worse model to guide with: "
                     "--guide_step N (a checkpoint of this run) or --guide_workdir DIR")
  guide = gen.guide if cfg.autoguidance else None
  if start is not None:
    sampling.edit_first_step(cfg, strength)  # checks strength (and stagger) before compiling
  length = d.text_len + 1
  text = tokenizer.encode_batch(prompts, length)
  uncond = np.asarray(step_lib.null_text(len(prompts), length))
  contrast = None
  if cfg.attribute_guidance:
    contrast = contrast_prompts(gen.config, prompts, length, guided=guided_attributes,
                                without=contrast_without)
  out = sample_videos(gen.params, text, uncond, jax.random.key(seed), gen.frozen, start, contrast,
                      guide and guide.params, rival_texts(cfg, prompts, length),
                      graphdef=gen.graphdef, cfg=cfg,
                      shape=(len(prompts),) + dims, latent=gen.latent, frames=frames,
                      strength=float(strength), guide_graphdef=guide and guide.graphdef)
  return video_io.to_uint8(np.asarray(out))  # raises if the sampler diverged (NaN)


def rival_texts(cfg: sampling.SamplerConfig, prompts, length: int):
  """The tokens best of N scores each draw against, beside no text: None for the PMI; for the
  shape margin, the prompts with each other shape word (captions.other_shapes)."""
  if cfg.candidates == 1 or cfg.rerank_score == "pmi":
    return None
  return swapped_tokens(captions.other_shapes, prompts, length)


def swapped_tokens(swap, prompts, length: int) -> tuple:
  """Tokens [len(prompts), length] for each k: prompt p as swap(p)[k] (one word swapped for
  each of its other values, as captions.other_shapes does)."""
  swapped = [swap(p) for p in prompts]
  return tuple(tokenizer.encode_batch([s[k] for s in swapped], length)
               for k in range(len(swapped[0])))


def _prepared_prompts(gen: Generator, prompts, expand_prompts) -> list[str]:
  """The prompts checked (non-empty UTF-8), then expanded when asked (None: the config's)."""
  prompts = [tokenizer.check_prompt(p) for p in prompts]
  if not prompts:
    raise ValueError("no prompts given: pass --prompt TEXT or --prompts FILE")
  if expand_prompts is None:
    expand_prompts = gen.config.sample.get("expand_prompts", False)
  return [captions.expand_prompt(p) for p in prompts] if expand_prompts else prompts


def _denoised_dims(gen: Generator, frames: int, height: int, width: int) -> tuple:
  """(T, H, W, C) of what the DiT denoises: the video's, or its latent grid's for a latent DiT;
  either must divide into the model's patches."""
  if gen.latent is None:
    dims = (frames, height, width, gen.config.model.channels)
  else:
    dims = gen.latent.shape(frames, height, width)
  patching.check_divisible(*dims[:3], gen.config.model.patch)
  return tuple(dims)


def contrast_prompts(config, prompts, length: int, *, guided=None, without=None):
  """(positive, negative) tokens for attribute guidance: the prompts without the words of
  `without` (None when it names none: the prompts themselves), and without those of `guided`
  too. Both comma-separated, among captions.DROPPABLE; None: config.sample.contrast_without /
  guided_attributes."""
  kinds = lambda given, key, default: [
      k for k in (config.sample.get(key, default) if given is None else given).split(",") if k]
  guided = kinds(guided, "guided_attributes", "shape")
  without = kinds(without, "contrast_without", "")
  if not guided:
    raise ValueError(f"attribute_guidance needs sample.guided_attributes, among "
                     f"{captions.DROPPABLE}")
  encode = lambda drop: tokenizer.encode_batch(
      [captions.drop_attributes(p, drop) for p in prompts], length)
  return (encode(without) if without else None), encode(without + guided)


def _edit_start(edit, count: int) -> np.ndarray:
  """uint8 [T, H, W, 3] or [count, T, H, W, 3] -> float [count, T, H, W, 3] in [-1, 1]."""
  edit = np.asarray(edit)
  if edit.dtype != np.uint8 or edit.ndim not in (4, 5) or edit.shape[-1] != 3:
    raise ValueError(f"a video to edit must be uint8 [T, H, W, 3] or [N, T, H, W, 3]; got "
                     f"{edit.dtype} {list(edit.shape)}")
  if edit.ndim == 5 and edit.shape[0] != count:
    raise ValueError(f"{edit.shape[0]} videos to edit for {count} prompts; give one or {count}")
  edit = np.broadcast_to(edit, (count,) + edit.shape[-4:])
  return data_pipeline.to_unit_range(edit)


def provenance(gen: Generator, prompt: str, seed: int) -> dict:
  """Metadata written into every output: what made it (the start of provenance, see safety/)."""
  return {"generator": "sora_jax", "ai_generated": "true", "checkpoint_step": str(gen.step),
          "prompt": prompt, "seed": str(seed)}

