"""Train-step model FLOP/s against the measured matmul peak, sampling time per video, peak memory.

  python experiments/benchmark.py --config=configs/tiny_cpu.py [--steps 10] [--out FILE.json]

Model FLOPs are counted analytically (sora_jax/models/flops.py); the peak is a large f32 jnp.dot
timed in the same process, so the ratio is a utilisation figure for this machine.
"""

import argparse
import os
import resource
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import results_io  # noqa: E402
from sora_jax import configlib  # noqa: E402
from sora_jax.data import tokenizer  # noqa: E402
from sora_jax.models import flops, latents  # noqa: E402
from sora_jax.parallel import mesh as mesh_lib, rules as rules_lib  # noqa: E402
from sora_jax.sample import pipeline  # noqa: E402
from sora_jax.train import loop, state as state_lib, step as step_lib  # noqa: E402


def timed(fn, repeats):
  """Median wall seconds of fn() (its result blocked on), after one warm-up call."""
  jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def matmul_peak(n=2048, repeats=5, dtype=jnp.float32):
  """FLOP/s of an n x n matmul (inputs in `dtype`, f32 accumulation): the reference the train
  step is compared with."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32).astype(dtype)
  dot = jax.jit(lambda a: jnp.dot(a, a, preferred_element_type=jnp.float32))
  return 2 * n**3 / timed(lambda: dot(a), repeats)


def train_step_time(config, steps, cached=False):
  """Seconds a train step; `cached`: a latent DiT reading pre-encoded latents (no VAE encode)."""
  if not cached and config.data.get("latent_cache"):  # time the step that encodes with the VAE
    config = config.copy_and_resolve_references()
    config.data.latent_cache = ""
  mesh = mesh_lib.make_mesh(config.mesh)
  rules = rules_lib.as_rules(config.mesh.rules)
  tx = state_lib.optimizer(config)
  with rules_lib.activate(mesh, rules):
    graphdef, state, shardings = state_lib.create_state(config, mesh, rules, tx)
  d, b = config.data, config.train.batch_size
  batch = {"video": jnp.zeros((b, d.frames, d.height, d.width, 3), jnp.float32),
           "text": jnp.asarray(tokenizer.encode_batch(["a small red circle moves left"] * b,
                                                       d.text_len + 1))}
  loss_fn, frozen = loop.task_loss(config)
  if cached:  # what data.latent_cache feeds: latents (the VAE only if the loss decodes)
    space, _ = latents.load(config.model.vae_workdir)
    batch = {"latent": jnp.zeros((b,) + space.shape(d.frames, d.height, d.width)),
             "text": batch["text"]}
  fn = step_lib.jit_train_step(config, graphdef, tx, shardings,
                               step_lib.batch_shardings(mesh, rules, batch), mesh, loss_fn=loss_fn)
  key = jax.random.key(0)
  holder = {"state": state}

  def one():
    holder["state"], m = fn(holder["state"], batch, key, frozen)
    return m["loss"]

  seconds = timed(one, steps)
  gen = pipeline.Generator(config, graphdef, holder["state"].params, 0)  # after: state is donated
  if config.model.vae_workdir:
    gen.latent, gen.frozen = latents.load(config.model.vae_workdir)
  return seconds, gen


def sample_time(gen, batch, repeats=2):
  prompts = ["a small red circle moves left"] * batch
  return timed(lambda: pipeline.generate(gen, prompts), repeats) / batch


def peak_memory_bytes():
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return int(stats["peak_bytes_in_use"])
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # host process RSS


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--config", default="configs/tiny_cpu.py")
  p.add_argument("--steps", type=int, default=10)
  p.add_argument("--out", default="runs/benchmark.json")
  p.add_argument("--cached_latents", action="store_true",
                 help="a latent DiT: also time the step on pre-encoded latents (latent cache)")
  args, overrides = p.parse_known_args()
  config = configlib.load(args.config, overrides)
  d = config.data
  peak = matmul_peak()
  step_s, gen = train_step_time(config, args.steps)
  frames, height, width = d.frames, d.height, d.width
  if gen.latent is not None:  # the DiT's own FLOPs on latents (the frozen VAE encode not counted)
    frames, height, width = gen.latent.shape(d.frames, d.height, d.width)[:3]
  model_flops = config.train.batch_size * flops.train_flops(
      config.model, frames=frames, height=height, width=width, text_len=d.text_len + 1,
      self_condition_prob=config.diffusion.get("self_condition_prob", 0.0))
  row = {
      "device": jax.devices()[0].device_kind, "config": args.config,
      "matmul_peak_tflops": peak / 1e12, "train_step_s": step_s,
      "train_model_tflops": model_flops / step_s / 1e12, "mfu_vs_matmul": model_flops / step_s / peak,
      "sample_s_per_video": sample_time(gen, 1), "sample_s_per_video_batch4": sample_time(gen, 4),
      "sample_steps": config.sample.steps, "peak_memory_gb": peak_memory_bytes() / 2**30,
  }
  if args.cached_latents:
    row["train_step_s_cached_latents"] = train_step_time(config, args.steps, cached=True)[0]
  print("| " + " | ".join(row) + " |\n|" + "---|" * len(row))
  print("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values())
        + " |")
  results_io.save_json(row, args.out)


if __name__ == "__main__":
  main()
