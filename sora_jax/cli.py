"""`sora-jax train | train-vae | encode-latents | export | sample | eval | meshes`: parses flags,
calls the library, turns user errors into one line.

  sora-jax train-vae --config=configs/vae_tiny.py --workdir=runs/vae
  sora-jax encode-latents --config=configs/tiny_latent.py --config.data.latent_cache=runs/cache
  sora-jax export --workdir=runs/vae --out=assets/vae_tiny
  sora-jax train  --config=configs/tiny_cpu.py --workdir=runs/x [--config.train.steps=100 ...]
  sora-jax sample --workdir=runs/x --prompt "a small red circle moves left" --out red.mp4
  sora-jax sample --workdir=runs/x --prompts prompts.txt --out samples/ --format gif
  sora-jax sample --workdir=runs/x --prompt "a small blue square moves up" --edit red.mp4 \
      --strength 0.6 --out blue.mp4
  sora-jax eval   --workdir=runs/x [--num_prompts 16] [--seeds 1] [--guidance 3] [--groups seen]
      [--attribute_guidance 2] [--[no-]first_frame_pass] [--[no-]draft_image]
      [--autoguidance 1 --guide_step 1800]
  sora-jax meshes --config=configs/tiny_cpu.py --mesh data=8 --mesh fsdp=4,tensor=2 [--steps 5]
  sora-jax meshes --config=configs/tpu_v5p_64.py --abstract --topology=v5p:4x4x4
"""

import argparse
import os
import sys

EXIT_USAGE = 2
# sampler overrides of a run's config; shift: the schedule's shift while sampling (default: the
# one it trained with)
SAMPLER_FLAGS = (("steps", int), ("guidance", float), ("eta", float), ("stagger", float),
                 ("shift", float), ("attribute_guidance", float),
                 ("guided_attributes", str), ("contrast_without", str), ("autoguidance", float),
                 ("eps_scale", float), ("candidates", int), ("rerank_score", str))
# on / off overrides of the run's sample config (--x, --no-x; neither: the config's)
SAMPLER_SWITCHES = (
    ("first_frame_pass", "draw the clip, keep its first frame, draw it again from that frame "
                         "(models trained with model.known_frames)"),
    ("draft_image", "with the first-frame pass: draw that frame alone, as an image (models "
                    "trained with train.image_batch)"),
    ("expand_prompts", "rewrite each prompt in the detailed register the model trained on "
                       "(captions.expand_prompt) before sampling"),
    ("rerank_draft", "with --candidates and the first-frame pass: rank the drafts whose first "
                     "frame is kept, not the finished clips"))
DEFAULT_EDIT_STRENGTH = 0.6


class UsageError(ValueError):
  """Bad input the user can fix; printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
  def error(self, message):
    raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
  p = _Parser(prog="sora-jax", allow_abbrev=False, description=__doc__.splitlines()[0])
  sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
  for name, what in (("train", "the text-to-video DiT"), ("train-vae", "the video VAE")):
    t = sub.add_parser(name, allow_abbrev=False, help=f"train (or resume) {what}")
    t.add_argument("--config", required=True)
    t.add_argument("--workdir", required=True)
  c = sub.add_parser("encode-latents", allow_abbrev=False,
                     help="encode the train split once with a latent DiT's VAE, into "
                          "data.latent_cache")
  c.add_argument("--config", required=True)
  x = sub.add_parser("export", allow_abbrev=False,
                     help="write a run's EMA parameters and config to a new folder that reads "
                          "like a workdir (how assets/vae_tiny was made)")
  x.add_argument("--workdir", required=True)
  x.add_argument("--out", required=True)
  x.add_argument("--step", type=int, help="default: the latest checkpoint")
  _add_generation_parsers(sub)
  _add_meshes_parser(sub)
  return p


def _add_generation_parsers(sub) -> None:
  """`sample` and `eval`: both restore a run and run its sampler, so they share its flags."""
  s = sub.add_parser("sample", allow_abbrev=False, help="generate videos from prompts")
  s.add_argument("--workdir", required=True)
  s.add_argument("--prompt", action="append", default=[])
  s.add_argument("--prompts", help="a UTF-8 file with one prompt a line")
  s.add_argument("--out", required=True, help="a file (one prompt) or a folder (several)")
  s.add_argument("--format", help="mp4 | gif | png | npy, for a folder --out (default mp4)")
  s.add_argument("--seed", type=int, default=0)
  for name, kind in SAMPLER_FLAGS + (("frames", int), ("height", int), ("width", int)):
    s.add_argument(f"--{name}", type=kind)
  s.add_argument("--edit", help="a .mp4, .gif or .npy clip to edit toward the prompts "
                                "(video-to-video); its size sets --frames/--height/--width")
  s.add_argument("--strength", type=float,
                 help="with --edit: the share of the chain run on the noised clip, in [0, 1] "
                      f"(0 keeps it, 1 ignores it; default {DEFAULT_EDIT_STRENGTH})")
  e = sub.add_parser("eval", allow_abbrev=False, help="prompt adherence on held-out prompts")
  e.add_argument("--workdir", required=True)
  e.add_argument("--num_prompts", type=int)
  e.add_argument("--seeds", type=int)
  for name, kind in SAMPLER_FLAGS:
    e.add_argument(f"--{name}", type=kind)
  e.add_argument("--groups", type=lambda text: tuple(text.split(",")),
                 help="comma-separated prompt groups: held_out (single objects of colour-shape "
                      "pairs never trained on: the quality bar), seen, two_objects (default all)")
  vae_help = ("a latent DiT: decode with this VAE (workdir or export) instead of the run's "
              "sample.vae_workdir / model.vae_workdir; it must share their latent stats")
  for parser in (s, e):
    parser.add_argument("--vae", help=vae_help)
    parser.add_argument("--guide_step", type=int,
                        help="--autoguidance's worse model: this checkpoint of the run (or of "
                             "--guide_workdir); default: the run's sample.guide_step")
    parser.add_argument("--guide_workdir", help="--autoguidance's worse model: the latest (or "
                        "--guide_step) checkpoint of another run on the same data")
    for name, text in SAMPLER_SWITCHES:
      parser.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, help=text)


def _add_meshes_parser(sub) -> None:
  m = sub.add_parser("meshes", allow_abbrev=False, help="compile the train step on several "
                     "meshes; compare memory, collectives and time per device")
  m.add_argument("--config", required=True)
  m.add_argument("--mesh", action="append", default=[],
                 help="axis sizes, e.g. fsdp=4,tensor=2 (repeatable; default: the config's mesh)")
  m.add_argument("--steps", type=int, default=5, help="timed steps after a warm-up step")
  m.add_argument("--out", default="runs/meshes", help="folder for meshes.json and meshes.md")
  m.add_argument("--abstract", action="store_true",
                 help="allocate nothing: compile where devices allow, else shardings only")
  m.add_argument("--topology", help="compile for a TPU topology not attached, e.g. v5p:4x4x4 "
                                    "(needs libtpu; implies --abstract)")


def _read_prompts(args) -> list[str]:
  from sora_jax.data import tokenizer
  prompts = list(args.prompt)
  if args.prompts:
    try:
      with open(args.prompts, "rb") as f:
        raw = f.read()
    except OSError as e:
      raise UsageError(f"--prompts={args.prompts}: cannot read ({e.strerror})") from None
    try:
      prompts += [line for line in raw.decode("utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as e:
      raise UsageError(f"--prompts={args.prompts}: not UTF-8 text (byte {e.start})") from None
  if not prompts:
    raise UsageError("no prompt: give --prompt TEXT (repeatable) or --prompts FILE")
  return [tokenizer.check_prompt(p) for p in prompts]


def _output_paths(args, count: int) -> list[str]:
  """Where each video goes; checked before any work, so bad paths cost nothing. A folder --out is
  created by the caller once the checkpoint has loaded."""
  from sora_jax.sample import video_io
  if count == 1 and not args.format and not os.path.isdir(args.out):
    video_io.format_of(args.out)
    video_io.check_writable(args.out)
    return [args.out]
  fmt = args.format or "mp4"
  if fmt not in video_io.FORMATS:
    raise UsageError(f"--format={fmt}: allowed {', '.join(video_io.FORMATS)}")
  if not os.path.isdir(args.out):
    parent = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
      raise UsageError(f"--out={args.out}: cannot create this folder ({parent} is missing or "
                       "not writable)")
  else:
    video_io.check_writable(os.path.join(args.out, f"000.{fmt}"))
  return [os.path.join(args.out, f"{i:03d}.{fmt}") for i in range(count)]


def cmd_train(args, overrides) -> None:
  from sora_jax import configlib
  from sora_jax.train import loop
  config = configlib.load(args.config, overrides)
  task = "vae" if args.command == "train-vae" else "dit"
  if config.task != task:
    other = "train-vae" if config.task == "vae" else "train"
    raise UsageError(f"{args.config} has task={config.task!r}: run `sora-jax {other}`")
  state = loop.train(config, args.workdir)  # SIGTERM stops it early, at a checkpointed step
  print(f"trained to step {int(state.step)}: {os.path.abspath(args.workdir)}")


def cmd_encode_latents(args, overrides) -> None:
  from sora_jax import configlib
  from sora_jax.data import latent_cache
  config = configlib.load(args.config, overrides)
  meta = latent_cache.write(config)
  print(f"encoded {meta['count']} clips to latents {meta['latent_shape']}: "
        f"{os.path.abspath(config.data.latent_cache)}")


def cmd_export(args) -> None:
  from sora_jax.train import restore
  meta = restore.export(args.workdir, args.out, step=args.step)
  print(f"exported the {meta['task']} of step {meta['step']}: {os.path.abspath(args.out)}")


def cmd_sample(args) -> None:
  from sora_jax.sample import pipeline, video_io
  prompts = _read_prompts(args)
  paths = _output_paths(args, len(prompts))
  if args.strength is not None and args.edit is None:
    raise UsageError("--strength is the strength of an edit: give the clip with --edit FILE")
  edit = None if args.edit is None else video_io.read_video(args.edit)
  gen = pipeline.load(args.workdir, vae_workdir=args.vae, guide_step=args.guide_step,
                      guide_workdir=args.guide_workdir)
  if len(paths) > 1 or args.format:
    os.makedirs(args.out, exist_ok=True)
  videos = pipeline.generate(gen, prompts, seed=args.seed, **_sampler_kw(args), frames=args.frames,
                             height=args.height, width=args.width, edit=edit,
                             strength=DEFAULT_EDIT_STRENGTH if args.strength is None
                             else args.strength)
  for path, prompt, video in zip(paths, prompts, videos):
    video_io.write_video(path, video, metadata=pipeline.provenance(gen, prompt, args.seed))
    print(path)
  if len(paths) > 1:
    sheet = os.path.join(args.out, "sheet.png")
    video_io.write_sheet(sheet, list(videos), labels=prompts)
    print(sheet)


def cmd_eval(args) -> None:
  from sora_jax.eval import reconstruction, run
  from sora_jax.sample import pipeline
  from sora_jax.train import restore
  groups = run.check_groups(args.groups or run.GROUPS)
  if restore.task_of(args.workdir) == "vae":  # the compression network: held-out reconstructions
    trained = restore.load_trained(args.workdir, task="vae")
    report = reconstruction.evaluate(trained, trained.config.data, args.num_prompts)
    print(reconstruction.write_report(report, args.workdir))
    return
  gen = pipeline.load(args.workdir, vae_workdir=args.vae, guide_step=args.guide_step,
                      guide_workdir=args.guide_workdir)
  cfg = gen.config.eval
  report = run.evaluate_groups(gen, args.num_prompts or cfg.num_prompts,
                               seeds=args.seeds or cfg.seeds, groups=groups,
                               **_sampler_kw(args))
  print(run.write_report(report, args.workdir))
  print(f"report: {os.path.join(os.path.abspath(args.workdir), 'eval', 'report.json')}")


def _sampler_kw(args) -> dict:
  return {name: getattr(args, name) for name, _ in SAMPLER_FLAGS + SAMPLER_SWITCHES}


def cmd_meshes(args, overrides) -> None:
  from sora_jax import mesh_compare  # sets JAX's CPU device count before its backends start
  mesh_compare.run(args.config, overrides, args.mesh, steps=args.steps, out=args.out,
                   abstract=args.abstract, topology=args.topology)


def _quiet_libraries() -> None:
  """TFDS and JAX log warnings a user cannot act on; keep the terminal for progress and results."""
  import warnings
  from absl import logging
  logging.set_verbosity(logging.ERROR)
  # ffmpeg runs as a subprocess; the fork happens before exec, so JAX's threads are not copied.
  warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called")


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  _quiet_libraries()
  try:
    args, extra = _parser().parse_known_args(argv)
    if args.command not in ("train", "train-vae", "encode-latents", "meshes") and extra:
      raise UsageError(f"unrecognised arguments: {' '.join(extra)}")
    {"train": lambda: cmd_train(args, extra), "train-vae": lambda: cmd_train(args, extra),
     "encode-latents": lambda: cmd_encode_latents(args, extra),
     "meshes": lambda: cmd_meshes(args, extra),
     "export": lambda: cmd_export(args), "sample": lambda: cmd_sample(args),
     "eval": lambda: cmd_eval(args)}[args.command]()
  except (ValueError, FileNotFoundError) as e:  # user errors: configlib, checkpoint, video_io, ...
    print(f"sora-jax: error: {e}", file=sys.stderr)
    return EXIT_USAGE
  return 0


if __name__ == "__main__":
  sys.exit(main())
