"""Run metrics: one JSON object a line in DIR/metrics.jsonl, and TensorBoard event files."""

import json
import math
import os

from tensorboardX import SummaryWriter


class MetricWriter:
  """Appends scalars to metrics.jsonl and TensorBoard; only process 0 should own one."""

  def __init__(self, workdir):
    os.makedirs(workdir, exist_ok=True)
    self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a", encoding="utf-8")
    self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

  def write(self, step: int, scalars: dict) -> None:
    row = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
    self._jsonl.write(json.dumps(row) + "\n")
    self._jsonl.flush()
    for name, value in row.items():
      if name != "step" and math.isfinite(value):
        self._tb.add_scalar(name, value, step)
    self._tb.flush()

  def close(self) -> None:
    self._jsonl.close()
    self._tb.close()


def read_metrics(workdir) -> list[dict]:
  """All rows of DIR/metrics.jsonl (a resumed run appends to it)."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]
