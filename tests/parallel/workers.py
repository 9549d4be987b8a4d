"""Subprocess side of the mesh tests: runs the real trainer on fake CPU devices, writes results.

JAX fixes its device count when it starts (`--xla_force_host_platform_device_count` in XLA_FLAGS),
and the pytest process already holds one device, so every multi-device run happens here:

  python -m tests.parallel.workers meshes OUT DATA_DIR              # 8 devices
  python -m tests.parallel.workers one_device OUT DATA_DIR CKPT     # 1 device
  python -m tests.parallel.workers process OUT DATA_DIR PORT ID     # 2 devices, one of 2 processes

Each writes OUT/<name>.json (losses, shardings, hashes) and OUT/<name>.npz (parameters).
"""

import hashlib
import json
import os
import re
import sys

import jax
import numpy as np
from jax.experimental import multihost_utils

from configs import default
from sora_jax.data import pipeline, tokenizer
from sora_jax.parallel import context as context_lib
from sora_jax.parallel import mesh as mesh_lib
from sora_jax.parallel import rules as rules_lib
from sora_jax.train import loop
from tests.conftest import tiny_config

STEPS = 3
MESHES = {  # name -> axis sizes (the rest 1)
    "data8": dict(data=8),
    "fsdp8": dict(fsdp=8),
    "data2_fsdp2_tensor2": dict(data=2, fsdp=2, tensor=2),
    "fsdp4_sequence2": dict(fsdp=4, sequence=2),
}
SAVED, RESTORED = "data8", dict(fsdp=4, tensor=2)
ATTENTION_MESHES = {  # Ulysses attention vs full attention
    "sequence8": dict(sequence=8),
    "fsdp2_sequence4": dict(fsdp=2, sequence=4),
    "data2_tensor2_sequence2": dict(data=2, tensor=2, sequence=2),
}
ULYSSES_MESH = dict(fsdp=4, sequence=2)  # trains the tiny model with model.attention="ulysses"
BF16_MESH = dict(data=2, fsdp=2, tensor=2)  # trains with model.matmul_dtype="bfloat16"


def config(data_dir, matmul_dtype="float32", **mesh):
  """The tiny config with a batch of 8, so batch, width (48), heads (2) and tokens (8) divide
  every mesh axis. train.steps is large and fixed: the CLI test runs (and stops) this same
  program, so it finds the compiled step in the shared persistent cache."""
  c = tiny_config(data_dir)
  c.train.batch_size, c.train.steps = 8, 1000
  c.train.log_every, c.train.checkpoint_every = 1, 1000
  c.model.matmul_dtype = matmul_dtype
  for axis in ("data", "fsdp", "tensor", "sequence"):
    c.mesh[axis] = mesh.get(axis, 1)
  return c


class CompileCounter:
  """Counts JAX's tracing / lowering / compiling events (with a cache hit, tracing still counts)."""

  def __init__(self):
    self.count = 0
    jax.monitoring.register_event_duration_secs_listener(self._on_event)

  def _on_event(self, name, secs, **kwargs):
    del secs, kwargs
    if name.startswith("/jax/core/compile/"):
      self.count += 1


def batch_hash(batch) -> str:
  h = hashlib.sha256()
  for k in sorted(batch):
    h.update(np.ascontiguousarray(np.asarray(batch[k])).tobytes())
  return h.hexdigest()


def flat(tree) -> dict:
  return {jax.tree_util.keystr(p): x for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def specs(tree) -> dict:
  """keystr -> (partition spec as lists, shape of the first device's shard)."""
  return {k: ([list(a) if isinstance(a, tuple) else a for a in x.sharding.spec],
              list(x.addressable_shards[0].data.shape)) for k, x in flat(tree).items()}


def save_params(out, name, params) -> None:
  np.savez(os.path.join(out, f"{name}.npz"), **{k: np.asarray(v) for k, v in flat(params).items()})


def train_steps(run, steps, counter=None, data=None) -> dict:
  """`steps` steps the way loop._loop takes them; losses, compile counts, the first batch."""
  data = run.data if data is None else data
  key = jax.random.key(run.config.seed)
  losses, compiles, first = [], [], None
  for _ in range(steps):
    before = counter.count if counter else 0
    batch = loop.global_batch(run, next(data))
    first = batch if first is None else first
    run.state, metrics = run.step_fn(run.state, batch, key, run.frozen)
    losses.append(float(metrics["loss"]))
    compiles.append((counter.count if counter else 0) - before)
  return {"losses": losses, "compiles": compiles, "cache_size": run.step_fn._cache_size(),
          "step": int(run.state.step), "first_batch": first}


def continue_from_checkpoint(cfg, workdir, out, name) -> dict:
  """setup() on a workdir holding a checkpoint (resumes), then one more training step."""
  run = loop.setup(cfg, workdir)
  restored_step = int(run.state.step)
  save_params(out, name, run.state.params)
  state_specs = specs(run.state)
  res = train_steps(run, 1)
  run.ckpt.close()
  return {"restored_step": restored_step, "specs": state_specs, "loss": res["losses"][0],
          "step": res["step"], "batch": batch_hash(res["first_batch"])}


def meshes(out, data_dir) -> dict:
  """Three steps on each mesh; save on data=8 and resume that checkpoint on fsdp=4 x tensor=2."""
  counter, results = CompileCounter(), {}
  for name, sizes in MESHES.items():
    cfg = config(data_dir, **sizes)
    workdir = os.path.join(out, name)
    run = loop.setup(cfg, workdir)
    res = train_steps(run, STEPS, counter)
    first = res.pop("first_batch")
    res["batch_specs"] = specs(first)
    res["specs"] = specs(run.state)
    if sizes.get("sequence", 1) > 1:  # are activations really split over `sequence`?
      hlo = run.step_fn.lower(run.state, first, jax.random.key(cfg.seed), run.frozen).as_text()
      res["sequence_constraints"] = sum(
          "sharding_constraint" in line and '"sequence"' in line for line in hlo.splitlines())
    save_params(out, name, run.state.params)
    if name == SAVED:
      run.ckpt.save(STEPS, run.state, run.data, cfg.to_dict())
      run.ckpt.close()  # waits for the async save
      after = train_steps(run, 1)  # what the uninterrupted run does next
      res["next"] = {"loss": after["losses"][0], "batch": batch_hash(after["first_batch"])}
      res["workdir"] = workdir
    else:
      run.ckpt.close()
    results[name] = res
  results["restored"] = continue_from_checkpoint(
      config(data_dir, **RESTORED), results[SAVED]["workdir"], out, "restored")
  results["bf16"] = plain_run(out, data_dir, "bf16", "bfloat16", **BF16_MESH)
  results["context"] = context(out, data_dir)  # same devices: one worker start instead of two
  return results


class SideBySide:
  """The batches two processes would read (process 0's rows, then process 1's), in one process."""

  def __init__(self, cfg):
    self.shards = [iter(pipeline.train_dataset(
        cfg.data, batch_size=cfg.train.batch_size, seed=cfg.seed, process_index=i,
        process_count=2)) for i in range(2)]

  def __next__(self):
    parts = [next(s) for s in self.shards]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def plain_run(out, data_dir, name, matmul_dtype="float32", **mesh) -> dict:
  """STEPS steps of the tiny config on `mesh` (default: 1 device); parameters to OUT/NAME.npz."""
  run = loop.setup(config(data_dir, matmul_dtype, **mesh), os.path.join(out, name))
  res = train_steps(run, STEPS, CompileCounter())
  del res["first_batch"]
  save_params(out, name, run.state.params)
  run.ckpt.close()
  return res


def one_device(out, data_dir, checkpoint_workdir) -> dict:
  """The 1-device references (float32 and bfloat16 matmuls), the data=8 checkpoint resumed on 1
  device, and the reference for the two-process run (same program, the two process shards' data
  side by side)."""
  results = {"reference": plain_run(out, data_dir, "reference"),
             "bf16_reference": plain_run(out, data_dir, "bf16_reference", "bfloat16")}
  results["restored"] = continue_from_checkpoint(config(data_dir), checkpoint_workdir, out,
                                                 "restored_1dev")
  cfg = config(data_dir)
  run = loop.setup(cfg, os.path.join(out, "two_process_reference"))
  res = train_steps(run, STEPS, data=SideBySide(cfg))
  run.ckpt.close()
  results["two_process_reference"] = {"losses": res["losses"],
                                      "batch": batch_hash(res["first_batch"])}
  return results


def process(out, data_dir, port, process_id) -> dict:
  """One of two processes (2 CPU devices each) training on a 4-device data mesh."""
  # gloo runs the cross-process collectives on CPU. jax 0.10 already defaults
  # jax_cpu_collectives_implementation to it (DEFAULT_CPU_COLLECTIVES_IMPL in jax/_src/config.py);
  # earlier versions defaulted to none, so it is set explicitly. Nothing else is needed on CPU.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2,
                             process_id=process_id, initialization_timeout=120)
  run = loop.setup(config(data_dir, data=4), os.path.join(out, "two_process"))
  local = next(run.data)
  first_global = loop.global_batch(run, local)
  whole = {k: multihost_utils.process_allgather(v, tiled=True) for k, v in first_global.items()}
  res = train_steps(run, STEPS, data=iter([local] + [next(run.data) for _ in range(STEPS - 1)]))
  run.ckpt.close()
  return {"process_index": jax.process_index(), "process_count": jax.process_count(),
          "local_devices": jax.local_device_count(), "devices": jax.device_count(),
          "losses": res["losses"], "local_batch": batch_hash(local),
          "local_rows": int(local["video"].shape[0]), "global_batch": batch_hash(whole),
          "rows": [hashlib.sha256(v.tobytes()).hexdigest() for v in local["video"]],
          "texts": [tokenizer.decode(t) for t in local["text"]]}


def shard_map_all_to_alls(compiled) -> int:
  """All-to-alls of a compiled program that jax.lax.all_to_all made (Ulysses), not those GSPMD
  adds to reshard: the full-attention step on fsdp=4 x sequence=2 has 26 of those (measured)."""
  made = re.compile(r'all-to-all\(.*op_name="[^"]*/all_to_all"')
  return sum(bool(made.search(line)) for line in compiled.as_text().splitlines())


def attention_error(sizes) -> dict:
  """Ulysses attention on a mesh vs full attention: max relative error, all-to-alls compiled."""
  mesh = mesh_lib.make_mesh({a: sizes.get(a, 1) for a in mesh_lib.AXES})
  rules = rules_lib.as_rules(default.get_config().mesh.rules)
  q, k, v = jax.random.normal(jax.random.key(0), (3, 4, 16, 8, 8))  # [B, N, H, D] each
  sharding = rules_lib.named(mesh, rules, context_lib.AXES)

  def ulysses(q, k, v):
    with rules_lib.activate_in_trace(mesh, rules):
      return context_lib.ulysses_attention(q, k, v)

  compiled = jax.jit(ulysses, in_shardings=(sharding,) * 3, out_shardings=sharding).lower(
      q, k, v).compile()
  want = np.asarray(jax.nn.dot_product_attention(q, k, v))
  got = np.asarray(compiled(q, k, v))
  return {"error": float(np.abs(got - want).max() / np.abs(want).max()),
          "all_to_all": shard_map_all_to_alls(compiled)}


def context(out, data_dir) -> dict:
  """Ulysses attention on ATTENTION_MESHES; STEPS training steps with it on ULYSSES_MESH."""
  results = {name: attention_error(sizes) for name, sizes in ATTENTION_MESHES.items()}
  cfg = config(data_dir, **ULYSSES_MESH)
  cfg.model.attention = "ulysses"
  run = loop.setup(cfg, os.path.join(out, "ulysses"))
  res = train_steps(run, STEPS, CompileCounter())
  first = res.pop("first_batch")
  hlo = run.step_fn.lower(run.state, first, jax.random.key(cfg.seed), run.frozen).compile()
  res["all_to_all"] = shard_map_all_to_alls(hlo)
  save_params(out, "ulysses", run.state.params)
  run.ckpt.close()
  results["ulysses_training"] = res
  return results


def main(argv) -> None:
  command, out, data_dir, *rest = argv
  os.makedirs(out, exist_ok=True)
  if command == "meshes":
    results, name = meshes(out, data_dir), "meshes"
  elif command == "one_device":
    results, name = one_device(out, data_dir, rest[0]), "one_device"
  elif command == "process":
    results, name = process(out, data_dir, int(rest[0]), int(rest[1])), f"process{rest[1]}"
  else:
    raise SystemExit(f"unknown command {command!r}")
  with open(os.path.join(out, f"{name}.json"), "w", encoding="utf-8") as f:
    json.dump(results, f)


if __name__ == "__main__":
  main(sys.argv[1:])
