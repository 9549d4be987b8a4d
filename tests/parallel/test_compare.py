"""`sora-jax meshes` (sora_jax/mesh_compare.py): one row per mesh, state bytes that follow the
shardings, the collectives each mesh compiles to, clear errors, and the TPU config sized per
device without a TPU.

The comparison on 8 fake CPU devices runs in a subprocess (JAX fixes its device count at start)
whose XLA_FLAGS name no device count: the CLI must ask JAX for the 8 devices itself.
"""

import importlib.util
import json
import os
import subprocess
import sys

import jax
import pytest

from sora_jax import cli, configlib, mesh_compare
from tests.conftest import FAST_XLA_FLAGS, ROOT
from tests.parallel import test_meshes

MESHES = {"data=8": "data8", "fsdp=8": "fsdp8"}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
  """The JSON report (plus its markdown and the log) of `sora-jax meshes` for MESHES on the tiny
  test model with a batch of 8."""
  tmp = tmp_path_factory.mktemp("compare")
  config_path = tmp / "tiny.py"
  config_path.write_text(f"from tests.parallel import workers\n\n\ndef get_config():\n"
                         f"  return workers.config({str(tmp / 'unused_data')!r})\n",
                         encoding="utf-8")
  out, log = str(tmp / "out"), str(tmp / "meshes.log")
  env = test_meshes.worker_env(8, tmp / "jax_cache")
  env["XLA_FLAGS"] = FAST_XLA_FLAGS  # no device count: the CLI sets it
  argv = ["-m", "sora_jax.cli", "meshes", f"--config={config_path}", "--steps", "1",
          "--out", out, *(f"--mesh={m}" for m in MESHES)]
  with open(log, "w", encoding="utf-8") as f:
    proc = subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, stdout=f,
                            stderr=subprocess.STDOUT)
  test_meshes.finish([proc], [log])
  with open(os.path.join(out, "meshes.json"), encoding="utf-8") as f:
    result = json.load(f)
  result["rows"] = {MESHES[m]: r for m, r in zip(MESHES, result["rows"])}
  with open(os.path.join(out, "meshes.md"), encoding="utf-8") as f:
    result["markdown"] = f.read()
  with open(log, encoding="utf-8") as f:
    result["log"] = f.read()
  return result


def test_one_row_per_mesh_with_memory_times_and_the_cpu_caveat(report):
  assert report["backend"] == "cpu (8 devices)"
  assert [r["mesh"] for r in report["rows"].values()] == list(MESHES)
  for row in report["rows"].values():
    assert row["devices"] == 8
    assert row["memory"]["temp"] > 0 and row["memory"]["peak"] > row["memory"]["temp"]
    assert row["compile_s"] > 0 and row["step_s"] > 0
  assert report["markdown"].count("\n| data=8 |") == report["markdown"].count("\n| fsdp=8 |") == 1
  assert mesh_compare.CPU_NOTE in report["markdown"] and mesh_compare.CPU_NOTE in report["log"]


def test_fsdp_holds_an_eighth_of_the_state_data_parallel_all_of_it(report):
  data8, fsdp8 = report["rows"]["data8"], report["rows"]["fsdp8"]
  assert data8["params"] == fsdp8["params"]
  assert data8["params_bytes_per_device"] == data8["params_bytes"] == 4 * data8["params"]
  for part in ("params", "opt_state", "ema_params"):
    eighth = data8[f"{part}_bytes_per_device"] / 8
    # Vectors whose axis maps to no fsdp axis (biases over heads / mlp / patch, ...) stay whole:
    # 9% more than an eighth for this 48-wide model (measured), 2% for configs/tiny_cpu.py.
    assert eighth <= fsdp8[f"{part}_bytes_per_device"] <= 1.1 * eighth, part
  assert fsdp8["memory"]["argument"] < data8["memory"]["argument"] / 4


def test_data_parallel_all_reduces_gradients_fsdp_gathers_parameters(report):
  data8 = report["rows"]["data8"]["collectives"]
  fsdp8 = report["rows"]["fsdp8"]["collectives"]
  assert data8["all-reduce"]["count"] > 0
  # Every gradient is reduced once: at least the parameter bytes go through all-reduce.
  assert data8["all-reduce"]["bytes"] >= report["rows"]["data8"]["params_bytes"]
  assert data8["all-gather"]["count"] == data8["reduce-scatter"]["count"] == 0
  assert fsdp8["all-gather"]["count"] + fsdp8["reduce-scatter"]["count"] > 0


@pytest.mark.parametrize("text,message", [
    ("", "expected axis=size pairs"),
    ("data8", "expected axis=size pairs"),
    ("pipeline=2", "unknown axis 'pipeline'"),
    ("fsdp=two", "'two' of fsdp is not an integer"),
    ("fsdp=0", "must be >= 1"),
    ("fsdp=2,fsdp=4", "axis 'fsdp' given twice"),
    ("data=-1,fsdp=-1", "at most one axis may be -1"),
])
def test_bad_mesh_strings_are_rejected_with_one_line(capsys, text, message):
  with pytest.raises(ValueError, match=message):
    mesh_compare.parse_mesh(text)
  assert cli.main(["meshes", "--config=configs/tiny_cpu.py", f"--mesh={text}"]) == 2
  err = capsys.readouterr().err
  assert err.startswith("sora-jax: error: --mesh=") and message in err and err.count("\n") == 1


def test_a_mesh_larger_than_the_devices_says_how_to_get_fake_ones():
  assert mesh_compare.parse_mesh("fsdp=4, tensor=2") == dict(data=1, fsdp=4, tensor=2, sequence=1)
  with pytest.raises(ValueError, match="xla_force_host_platform_device_count=64"):
    mesh_compare.make_mesh(mesh_compare.parse_mesh("fsdp=64"), jax.devices())


@pytest.mark.skipif(importlib.util.find_spec("libtpu") is not None, reason="libtpu installed")
def test_a_tpu_topology_without_libtpu_says_what_to_install(monkeypatch):
  monkeypatch.delenv("TPU_LIBRARY_PATH", raising=False)
  with pytest.raises(ModuleNotFoundError, match=r"libtpu is not installed.*libtpu==0\.0\.42"):
    mesh_compare.tpu_devices("v5p:4x4x4")


def test_the_tpu_config_is_sized_per_device_without_a_tpu():
  config = configlib.load(os.path.join(ROOT, "configs", "tpu_v5p_64.py"), [])
  report = mesh_compare.compare(config, [], abstract=True)  # its own mesh; 64 > 1 device here
  (row,) = report["rows"]
  assert row["mesh"] == "fsdp=16 x sequence=4" and row["devices"] == 64
  assert row["note"] == "not compiled: needs 64 devices, JAX sees 1"
  assert 5e9 < row["params"] < 10e9
  # float32 parameters, Adam's two moments and the EMA, split 16 ways by fsdp.
  assert row["state_bytes_per_device"] == pytest.approx(16 * row["params"] / 16, rel=0.01)
  assert row["state_bytes_per_device"] < 95e9  # a v5p chip's HBM
  assert "| fsdp=16 x sequence=4 | 6," in mesh_compare.markdown(report)
