"""Does classifier guidance (Dhariwal & Nichol 2021) win back the squares a latent DiT rounds?

Trains the noise-aware attribute classifier (models/attribute_classifier.py) on a latent cache
(train/classifier.py; the last 1,000 clips held back to report its accuracy by noise level), or
loads one saved by an earlier run, then samples the held-out prompts of issue 4's bar with the
gradient of log p(attribute | x_t) added to the DiT's x0 estimate at every step:
x0 += w sigma^2 / max(alpha, 0.2) grad (the score form of the guidance; the floor keeps the first,
pure-noise steps finite). The sampler's guided prediction is wrapped for the probe only; the CLI
does not expose this guidance.

  python experiments/classifier_guidance_probe.py --cache runs/cache20k --classifier runs/cls \
      [--train_steps 1500] --workdir runs/sp9 --step 3600 --weights 0,1,3 [--attributes shape]
"""

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sora_jax.data import captions  # noqa: E402
from sora_jax.diffusion import objectives, sampling, schedules  # noqa: E402
from sora_jax.eval import run as eval_run  # noqa: E402
from sora_jax.models import attribute_classifier as ac  # noqa: E402
from sora_jax.sample import pipeline  # noqa: E402
from sora_jax.train import classifier  # noqa: E402

HOLD_BACK = 1_000
TIMES = (0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95)


def trained_classifier(args, channels: int, shift: float):
  """The classifier in args.classifier, trained there first when args.train_steps > 0 (at the
  DiT's time shift)."""
  path = os.path.abspath(args.classifier)
  if args.train_steps:
    z, labels = classifier.load_cache(args.cache)
    split = lambda a: (a[:-HOLD_BACK], a[-HOLD_BACK:])
    (zt, zv), lab = split(z), {k: split(v) for k, v in labels.items()}
    start = time.time()
    model = classifier.train(zt, {k: v[0] for k, v in lab.items()}, steps=args.train_steps,
                             shift=shift, log_every=200)
    minutes = (time.time() - start) / 60
    acc = classifier.accuracy_by_time(model, zv, {k: v[1] for k, v in lab.items()}, TIMES,
                                      schedule="cosine", shift=shift)
    print(json.dumps({"train_minutes": round(minutes, 1), "accuracy_by_time": acc}), flush=True)
    ocp.StandardCheckpointer().save(path, nnx.state(model), force=True)
    return model
  graphdef, state = nnx.split(nnx.eval_shape(
      lambda: ac.AttributeClassifier(channels, rngs=nnx.Rngs(0))))
  return nnx.merge(graphdef, ocp.StandardCheckpointer().restore(path, state))


def install(model, settings: dict, attributes, shift: float):
  """Wraps sampling.guided: the guided x0 prediction plus the classifier's gradient."""
  original = sampling.guided

  def guided(model_fn, x, t, cond, *args, **kwargs):
    pred = original(model_fn, x, t, cond, *args, **kwargs)
    if not settings["weight"]:
      return pred
    tt = t[:, 0]
    labels = {k: jnp.asarray(v) for k, v in settings["labels"].items() if k in attributes}
    grad = jax.grad(lambda xx: ac.log_likelihood(model(xx, tt), labels).sum())(x)
    alpha, sigma = schedules.alpha_sigma("cosine", tt, shift)
    return pred + settings["weight"] * objectives.expand(
        sigma**2 / jnp.maximum(alpha, 0.2), x) * grad

  sampling.guided = guided


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--cache", default="runs/cache20k")
  p.add_argument("--classifier", required=True)
  p.add_argument("--train_steps", type=int, default=0)
  p.add_argument("--workdir", required=True)
  p.add_argument("--step", type=int)
  p.add_argument("--weights", default="0,1,3")
  p.add_argument("--attributes", default="shape")
  args = p.parse_args()
  gen = pipeline.load(args.workdir, step=args.step)
  if gen.config.diffusion.prediction != "x0" or gen.config.diffusion.schedule != "cosine":
    raise SystemExit("the probe adds to an x0 prediction on the cosine schedule")
  shift = float(gen.config.diffusion.shift)  # the classifier's noise is the DiT's
  model = trained_classifier(args, gen.config.model.channels, shift)
  prompts = eval_run.heldout_prompts(gen.config.data, 32)
  labels = [ac.labels_of(captions.parse_prompt(p)) for p in prompts]
  settings = {"weight": 0.0, "labels": {k: np.asarray([lab[k] for lab in labels], np.int32)
                                        for k in ac.CLASSES}}
  install(model, settings, args.attributes.split(","), shift)
  for weight in map(float, args.weights.split(",")):
    settings["weight"] = weight
    jax.clear_caches()  # the wrapper reads the weight when the sampler is traced
    summary = eval_run.evaluate(gen, prompts, seeds=2)["summary"]
    print(json.dumps({"workdir": args.workdir, "step": gen.step, "weight": weight,
                      "attributes": args.attributes, **{k: round(v, 3) for k, v in
                                                        summary.items()}}), flush=True)


if __name__ == "__main__":
  main()
