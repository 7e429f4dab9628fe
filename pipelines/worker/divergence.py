"""A diverged training: what the trainer's guard writes and both sides read (standard
library only: the orchestrator's training stage imports it too).

Transformers and Axolotl keep stepping on a NaN or infinite loss, and save an adapter
of NaNs at the end. The guard (pipelines/worker/axolotl_guard.py) stops the training at
the first logged step that shows a divergence and writes `divergence.json` into the
Axolotl output folder; the trainer worker and the training stage then fail the run,
naming the step and the values, instead of handing the adapter on. A divergence is:

- a loss or gradient norm that is NaN or infinite;
- a gradient norm of exactly 0 with a positive loss: no gradient reaches the trainable
  weights any more. This is how a too-large learning rate ends in float32 here: the
  activations overflow inside an RMSNorm (x**2 is inf, so the layer outputs zeros), the
  model predicts a uniform distribution (loss = ln(vocabulary size)) and stops learning,
  without a single NaN. A live LoRA training never has a gradient of exactly 0 (even at
  the first step, when B is 0, the gradient of B is not).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DIVERGENCE_FILE = "divergence.json"
WATCHED = ("loss", "grad_norm")  # the logged values that must stay finite


def divergence_signs(logs: Mapping[str, Any]) -> dict[str, str]:
    """What shows a divergence in one logged step ({} when nothing does): the NaN or
    infinite values ('nan', 'inf'), or the loss with a gradient norm of exactly 0."""
    values = {
        name: float(value)
        for name in WATCHED
        if isinstance(value := logs.get(name), int | float) and not isinstance(value, bool)
    }
    found = {name: str(value) for name, value in values.items() if not math.isfinite(value)}
    if found:
        return found
    if values.get("grad_norm") == 0.0 and values.get("loss", 0.0) > 0.0:
        return {"loss": f"{values['loss']:.4g}", "grad_norm": "0.0 (no gradient left)"}
    return {}


def write_divergence(output_dir: Path, step: int, max_steps: int, values: dict[str, str]) -> Path:
    path = Path(output_dir) / DIVERGENCE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"step": step, "max_steps": max_steps, "values": values}))
    return path


def read_divergence(output_dir: Path) -> dict[str, Any] | None:
    """What the guard recorded in `output_dir`, or None when the training stayed finite."""
    path = Path(output_dir) / DIVERGENCE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # torn: still a divergence, with no details
        return {"step": None, "max_steps": None, "values": {}}


def describe_divergence(record: Mapping[str, Any]) -> str:
    """'training diverged at step 3 of 8 (loss nan, grad_norm nan)'."""
    step, total = record.get("step"), record.get("max_steps")
    where = f" at step {step}" + (f" of {total}" if total else "") if step is not None else ""
    values = ", ".join(f"{k} {v}" for k, v in (record.get("values") or {}).items())
    return f"training diverged{where}" + (f" ({values})" if values else "")
