"""What every experiment does with its result: one JSON file, its folder made if missing."""

import json
import os


def save_json(obj, path: str) -> None:
  """Writes obj to path as indented JSON and says where."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(obj, f, indent=2)
  print(f"saved {path}")
