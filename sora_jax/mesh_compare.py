"""`sora-jax meshes`: compile the train step on several meshes and compare what each costs a device.

For every mesh the state and the jitted step are built as the trainer builds them
(train/state.py, train/step.py), lowered from ShapeDtypeStructs and compiled ahead of time; then
parallel/hlo.py reads the state bytes per device from the shardings, and the memory and the
collectives from the compiled program. Real arrays are made only to time a few steps. With
`abstract` nothing is allocated: a model too large for this machine, or a TPU topology that is not
attached (compiled through libtpu on a CPU host), is sized from shapes alone. It compiles train
steps, so it sits on the top floor with cli.py (DESIGN.md), not in parallel/.
"""

import dataclasses
import functools
import json
import math
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import mesh_utils, topologies

from sora_jax import configlib
from sora_jax.data import tokenizer
from sora_jax.models import patching, vae as vae_lib
from sora_jax.parallel import hlo
from sora_jax.parallel import mesh as mesh_lib
from sora_jax.parallel import rules as rules_lib
from sora_jax.train import loop, state as state_lib, step as step_lib

CPU_NOTE = ("CPU step times do not predict TPU (or GPU) step times: fake CPU devices share the "
            "host's cores and their collectives are memory copies. Compare memory and collectives "
            "across meshes; time steps on the target hardware.")
HOW_TO_DEVICES = ("on a CPU host, start with XLA_FLAGS=--xla_force_host_platform_device_count={n} "
                  "(sora-jax meshes sets it itself when XLA_FLAGS has no device count), or size "
                  "the mesh without devices with --abstract")


def parse_mesh(text: str) -> dict:
  """`fsdp=4,tensor=2` -> {"data": 1, "fsdp": 4, "tensor": 1, "sequence": 1}; axes not named
  are 1, and one size may be -1 (all remaining devices)."""
  usage = (f"--mesh={text!r}: expected axis=size pairs joined by commas, like fsdp=4,tensor=2 "
           f"(axes: {', '.join(mesh_lib.AXES)})")
  sizes = dict.fromkeys(mesh_lib.AXES, 1)
  named = set()
  for part in text.split(","):
    axis, eq, size = part.strip().partition("=")
    if not eq:
      raise ValueError(usage)
    if axis not in sizes:
      raise ValueError(f"--mesh={text!r}: unknown axis {axis!r}; axes are "
                       f"{', '.join(mesh_lib.AXES)}")
    if axis in named:
      raise ValueError(f"--mesh={text!r}: axis {axis!r} given twice")
    try:
      sizes[axis] = int(size)
    except ValueError:
      raise ValueError(f"--mesh={text!r}: size {size!r} of {axis} is not an integer") from None
    if sizes[axis] < 1 and sizes[axis] != -1:
      raise ValueError(f"--mesh={text!r}: size of {axis} must be >= 1 (or -1 for the rest)")
    named.add(axis)
  if list(sizes.values()).count(-1) > 1:
    raise ValueError(f"--mesh={text!r}: at most one axis may be -1")
  return sizes


def mesh_name(sizes: dict) -> str:
  """{"data": 2, "fsdp": 2, ...} -> "data=2 x fsdp=2" (size-1 axes left out)."""
  return " x ".join(f"{a}={n}" for a, n in sizes.items() if n != 1) or "1 device"


def use_cpu_devices(count: int) -> None:
  """Gives JAX `count` CPU devices unless the user chose a count (XLA_FLAGS or
  JAX_NUM_CPU_DEVICES). Works only before JAX starts its backends: call it first."""
  if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
    return
  if jax.config.jax_num_cpu_devices != -1:
    return
  try:
    jax.config.update("jax_num_cpu_devices", count)
  except RuntimeError:  # backends already started: the device check explains what to do
    pass


def device_count(sizes: dict) -> int:
  return math.prod(n for n in sizes.values() if n != -1)


def tpu_devices(topology: str) -> list:
  """Compile-only devices of a TPU topology such as "v5p:4x4x4" (needs libtpu, not a TPU)."""
  try:
    return list(topologies.get_topology_desc(platform="tpu", topology_name=topology).devices)
  except RuntimeError as e:
    if "not installed" in str(e):
      raise ModuleNotFoundError(
          f"no AOT compile for TPU topology {topology}: libtpu is not installed. "
          "`pip install libtpu==0.0.42.*` (the project's [tpu] extra; the version "
          "jax[tpu]==0.10.2 pins), or install it elsewhere with `pip install --target DIR` and "
          "set TPU_LIBRARY_PATH=DIR/libtpu/libtpu.so") from None
    raise ValueError(f"--topology={topology}: {e}") from None


def make_mesh(sizes: dict, devices) -> jax.sharding.Mesh:
  """The trainer's Mesh for `sizes` on the first devices it needs; TPU devices are laid out by
  their physical topology (mesh_utils), so neighbours on an axis are neighbours on the torus."""
  cfg = dict(sizes)
  n = len(devices) if -1 in cfg.values() else device_count(cfg)
  if n > len(devices):
    raise ValueError(f"mesh {mesh_name(sizes)} needs {n} devices but JAX sees {len(devices)} "
                     f"({devices[0].platform}); " + HOW_TO_DEVICES.format(n=n))
  shape = mesh_lib.mesh_shape(cfg, n)
  devices = devices[:n]
  if devices[0].platform == "tpu":
    devices = list(mesh_utils.create_device_mesh(shape, devices,
                                                 allow_split_physical_axes=True).ravel())
  return mesh_lib.make_mesh(cfg, devices=devices)


def abstract_mesh(sizes: dict) -> jax.sharding.AbstractMesh:
  """A mesh of axis sizes only, for shardings without devices ("-1" is not allowed here)."""
  if -1 in sizes.values():
    raise ValueError(f"mesh {mesh_name(sizes)}: give every size (no -1) to size it without "
                     "devices")
  return jax.sharding.AbstractMesh(tuple(sizes.values()), mesh_lib.AXES,
                                   axis_types=(jax.sharding.AxisType.Auto,) * len(sizes))


def step_inputs(config):
  """(loss_fn, batch ShapeDtypeStructs) the trainer's step takes for `config`. A latent DiT is
  compared on cached latents (data.latent_cache's path) of the VAE `config.vae` describes, so
  no trained VAE is needed and its encoder is not part of the step."""
  d, b = config.data, config.train.batch_size
  text = jax.ShapeDtypeStruct((b, d.text_len + 1), jnp.int32)
  if config.task == "dit" and config.model.vae_workdir:
    v = config.vae
    if config.model.channels != v.latent_channels:
      raise ValueError(f"model.channels={config.model.channels} but vae.latent_channels="
                       f"{v.latent_channels}")
    latent = (vae_lib.latent_frames(d.frames, v.factors[0]), d.height // v.factors[1],
              d.width // v.factors[2], v.latent_channels)
    patching.check_divisible(*latent[:3], config.model.patch)
    loss_fn = functools.partial(step_lib.diffusion_loss,
                                cfg=step_lib.StepConfig.from_config(config))
    return loss_fn, {"latent": jax.ShapeDtypeStruct((b,) + latent, jnp.float32), "text": text}
  loss_fn, _ = loop.task_loss(config)
  channels = config.vae.channels if config.task == "vae" else config.model.channels
  video = jax.ShapeDtypeStruct((b, d.frames, d.height, d.width, channels), jnp.float32)
  return loss_fn, {"video": video, "text": text}


def with_mesh(config, sizes: dict):
  c = config.copy_and_resolve_references()
  for axis, n in sizes.items():
    c.mesh[axis] = n
  return c


def state_figures(abstract, shardings) -> dict:
  """Parameter count and bytes per device of parameters, optimizer state and EMA."""
  out = {"params": sum(math.prod(x.shape) for x in jax.tree.leaves(abstract.params))}
  for part in ("params", "opt_state", "ema_params"):
    total, local = hlo.tree_bytes(getattr(abstract, part), getattr(shardings, part))
    out[f"{part}_bytes"], out[f"{part}_bytes_per_device"] = total, local
  out["state_bytes_per_device"] = sum(out[f"{p}_bytes_per_device"]
                                      for p in ("params", "opt_state", "ema_params"))
  return out


@dataclasses.dataclass
class Built:
  """One mesh's state shapes, shardings and (not yet compiled) step."""
  mesh: object
  graphdef: object
  abstract: state_lib.TrainState
  shardings: state_lib.TrainState
  tx: object
  step_fn: object
  args: tuple  # ShapeDtypeStructs of (state, batch, key, frozen), with shardings


def build(config, mesh) -> Built:
  """State shapes and the jitted train step on `mesh`, as loop.setup makes them."""
  rules = rules_lib.as_rules(config.mesh.rules)
  tx = state_lib.optimizer(config)
  loss_fn, batch = step_inputs(config)
  with rules_lib.activate(mesh, rules):
    graphdef, abstract = state_lib.abstract_state(config, tx)
  # Outside the mesh: optax builds the moments' tree eagerly, and a TPU topology's devices
  # compile but cannot run it.
  shardings = state_lib.state_shardings(abstract, tx, mesh, rules)
  batch_sharding = step_lib.batch_shardings(mesh, rules, batch)
  step_fn = step_lib.jit_train_step(config, graphdef, tx, shardings, batch_sharding, mesh,
                                    loss_fn=loss_fn)
  place = lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s)
  key = jax.eval_shape(lambda: jax.random.key(0))
  args = (jax.tree.map(place, abstract, shardings), jax.tree.map(place, batch, batch_sharding),
          place(key, rules_lib.replicated(mesh)), {})
  return Built(mesh, graphdef, abstract, shardings, tx, step_fn, args)


def compile_step(built: Built) -> tuple[object, dict]:
  """The compiled step and its figures: memory, collectives, lower and compile seconds."""
  start = time.perf_counter()
  lowered = built.step_fn.lower(*built.args)
  lowered_at = time.perf_counter()
  compiled = lowered.compile()
  done = time.perf_counter()
  return compiled, {"lower_s": lowered_at - start, "compile_s": done - lowered_at,
                    "memory": hlo.memory(compiled),
                    "collectives": hlo.collectives(compiled.as_text())}


def time_steps(config, built: Built, compiled, steps: int) -> dict:
  """Median seconds of `steps` steps on real arrays after one warm-up step, and the last loss."""
  rules = rules_lib.as_rules(config.mesh.rules)
  with rules_lib.activate(built.mesh, rules):
    _, state, _ = state_lib.create_state(config, built.mesh, rules, built.tx)
  _, batch, _, frozen = built.args
  rng = np.random.default_rng(config.seed)
  text = tokenizer.encode_batch(["a small red circle moves left"] * batch["text"].shape[0],
                                batch["text"].shape[1])
  host = {k: text if k == "text" else rng.standard_normal(x.shape, np.float32)
          for k, x in batch.items()}
  batch = {k: jax.device_put(v, batch[k].sharding) for k, v in host.items()}
  key = jax.random.key(config.seed)
  times = []
  for i in range(steps + 1):
    start = time.perf_counter()
    state, metrics = compiled(state, batch, key, frozen)
    loss = float(jax.block_until_ready(metrics)["loss"])
    if i:  # the first call pays for allocation and warm-up
      times.append(time.perf_counter() - start)
  return {"step_s": statistics.median(times), "loss": loss}


def sharding_only(config, sizes: dict) -> dict:
  """State figures of `sizes` from shardings on an AbstractMesh: no devices, nothing compiled."""
  mesh, rules = abstract_mesh(sizes), rules_lib.as_rules(config.mesh.rules)
  tx = state_lib.optimizer(config)
  with rules_lib.activate_in_trace(mesh, rules):
    _, abstract = state_lib.abstract_state(config, tx)
    shardings = state_lib.state_shardings(abstract, tx, mesh, rules)
  return state_figures(abstract, shardings)


def compare_mesh(config, sizes: dict, devices, *, steps: int, abstract: bool) -> dict:
  """One row of the comparison: state bytes, and where devices allow, the compiled step's
  memory, collectives and compile time, and (unless `abstract`) its measured step time."""
  config = with_mesh(config, sizes)
  row = {"mesh": mesh_name(sizes), "sizes": sizes, "devices": device_count(sizes)}
  if abstract and (devices is None or row["devices"] > len(devices)):
    row.update(sharding_only(config, sizes))
    row["note"] = "not compiled: " + ("no devices to compile for" if devices is None else
                                      f"needs {row['devices']} devices, JAX sees {len(devices)}")
    return row
  built = build(config, make_mesh(sizes, devices))
  row["devices"] = built.mesh.size
  row.update(state_figures(built.abstract, built.shardings))
  compiled, figures = compile_step(built)
  row.update(figures)
  if not abstract:
    row.update(time_steps(config, built, compiled, steps))
  return row


def compare(config, meshes, *, steps: int = 5, abstract: bool = False, topology=None,
            log=None) -> dict:
  """The comparison report of `meshes` (axis-size dicts; none: the config's own mesh).

  `topology` (e.g. "v5p:4x4x4") compiles for TPU devices that need not be attached; without
  libtpu the report says so and gives the bytes that follow from the shardings alone.
  """
  if steps < 1:
    raise ValueError(f"--steps={steps}: must be >= 1")
  meshes = meshes or [{a: int(config.mesh[a]) for a in mesh_lib.AXES}]
  notes, devices = [], None
  if topology:
    abstract = True
    try:
      devices = tpu_devices(topology)
    except ModuleNotFoundError as e:
      notes.append(f"{e}. Bytes per device come from the shardings only.")
  else:
    devices = jax.devices()
  rows = []
  for sizes in meshes:
    started = time.perf_counter()
    rows.append(compare_mesh(config, sizes, devices, steps=steps, abstract=abstract))
    if log:
      log(f"{rows[-1]['mesh']}: {time.perf_counter() - started:.1f} s")
  if not abstract and devices[0].platform == "cpu":
    notes.append(CPU_NOTE)
  return {"backend": f"{devices[0].device_kind} ({len(devices)} devices)" if devices else "none",
          "topology": topology, "abstract": abstract, "steps": None if abstract else steps,
          "rows": rows, "notes": notes}


def fmt_bytes(n) -> str:
  if n is None:
    return "-"
  for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
    if n >= size:
      return f"{n / size:.3g} {unit}"
  return f"{n} B"


def _cells(row: dict) -> list[str]:
  mem = row.get("memory") or {}
  coll = row.get("collectives")
  cells = [row["mesh"], f"{row['params'] / 1e6:,.1f} M",
           *(fmt_bytes(row[f"{p}_bytes_per_device"]) for p in ("params", "opt_state")),
           fmt_bytes(row["state_bytes_per_device"]), fmt_bytes(mem.get("temp")),
           fmt_bytes(mem.get("peak"))]
  for op in hlo.COLLECTIVES:
    c = coll[op] if coll else None
    cells.append("-" if c is None else "0" if not c["count"] else
                 f"{c['count']} / {fmt_bytes(c['bytes'])}")
  secs = lambda k: f"{row[k]:.3g}" if row.get(k) is not None else "-"
  compile_s = (f"{row['lower_s'] + row['compile_s']:.3g}" if "compile_s" in row else "-")
  return cells + [compile_s, secs("step_s")]


HEADER = ("mesh", "params", "params/dev", "opt state/dev", "state/dev", "temp/dev", "peak/dev",
          *hlo.COLLECTIVES, "compile s", "step s")


def markdown(report: dict) -> str:
  """The report as a markdown table, with what the columns mean and the notes below it."""
  lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
  lines += ["| " + " | ".join(_cells(r)) + " |" for r in report["rows"]]
  if report.get("config"):
    lines += ["", "Config: " + " ".join([report["config"], *report.get("overrides", [])]) + "."]
  lines += ["", f"Backend: {report['backend']}"
            + (f", topology {report['topology']}" if report["topology"] else "")
            + (f"; step s: median of {report['steps']} steps after a warm-up step"
               if report["steps"] else "") + ".",
            "Per device: state/dev = parameters + optimizer state + EMA from the shardings; "
            "temp and peak (arguments + outputs - donated aliases + temp) from the compiled "
            "step's memory_analysis(); collectives: count / bytes of their results in the "
            "compiled HLO, per step (an op inside a loop counts once); compile s = lower + "
            "compile."]
  lines += [f"{r['mesh']}: {r['note']}." for r in report["rows"] if r.get("note")]
  return "\n".join(lines + report["notes"]) + "\n"


def write(report: dict, out: str) -> list[str]:
  """OUT/meshes.json and OUT/meshes.md; returns their paths."""
  os.makedirs(out, exist_ok=True)
  paths = [os.path.join(out, "meshes.json"), os.path.join(out, "meshes.md")]
  with open(paths[0], "w", encoding="utf-8") as f:
    json.dump(report, f, indent=2)
  with open(paths[1], "w", encoding="utf-8") as f:
    f.write(markdown(report))
  return paths


def run(config_path: str, overrides: list, mesh_texts: list, *, steps: int, out: str,
        abstract: bool = False, topology=None) -> dict:
  """What `sora-jax meshes` does: parse, compare, print the table, write JSON and markdown."""
  meshes = [parse_mesh(t) for t in mesh_texts]
  config = configlib.load(config_path, overrides)
  needed = max(device_count(m) for m in meshes or [{a: config.mesh[a] for a in mesh_lib.AXES}])
  if not topology and needed > 1:
    use_cpu_devices(needed)
  report = compare(config, meshes, steps=steps, abstract=abstract, topology=topology,
                   log=lambda line: print(line, flush=True))
  report.update(config=config_path, overrides=list(overrides))
  print(markdown(report))
  for path in write(report, out):
    print(path)
  return report
