"""Compare sharding meshes for one config: `sora-jax meshes` under the experiments/ name.

  python experiments/compare_meshes.py --config=configs/tiny_cpu.py --mesh data=8 \
      --mesh fsdp=8 --mesh data=2,fsdp=2,tensor=2 --mesh fsdp=4,sequence=2 \
      --out experiments/results/meshes_cpu_tiny
  python experiments/compare_meshes.py --config=configs/tpu_v5p_64.py --abstract \
      --topology=v5p:4x4x4 --out experiments/results/meshes_tpu_v5p_64

Per mesh: parameter + optimizer bytes per device, compiled temp memory, collectives and their
bytes per step, compile time and step time (sora_jax/mesh_compare.py); OUT/meshes.json and
OUT/meshes.md. On CPU the tool asks JAX for as many fake devices as the largest mesh needs.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sora_jax import cli  # noqa: E402

if __name__ == "__main__":
  sys.exit(cli.main(["meshes", *sys.argv[1:]]))
