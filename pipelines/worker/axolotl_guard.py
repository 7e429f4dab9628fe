"""Axolotl plugin (trainer env): stop a training that diverged, and say so.

A NaN or infinite loss does not stop the Hugging Face Trainer: it keeps stepping (by
default it even hides the NaN from the logged loss, `logging_nan_inf_filter`) and
Axolotl saves an adapter of NaNs; a collapsed model (no gradient left) trains on just
as quietly. This plugin turns that filter off and adds a callback that, at each logged
step, stops the training (`control.should_training_stop`) as soon as the step shows a
divergence (pipelines/worker/divergence.py: a NaN/inf loss or gradient norm, or a
gradient norm of exactly 0), prints one line saying where, and writes `divergence.json`
into the output folder; the trainer worker and the training stage fail the run with
that cause.

Rendered into every Axolotl config by pipelines/lib/axolotl_config.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from axolotl.integrations.base import BasePlugin
from transformers import TrainerCallback

from pipelines.worker.divergence import (
    describe_divergence,
    divergence_signs,
    write_divergence,
)


class DivergenceCallback(TrainerCallback):
    def __init__(self, output_dir: Path) -> None:
        self.output_dir = Path(output_dir)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        values = divergence_signs(logs or {})
        if not values:
            return
        control.should_training_stop = True
        if state.is_world_process_zero:
            record = {"step": state.global_step, "max_steps": state.max_steps, "values": values}
            write_divergence(self.output_dir, state.global_step, state.max_steps, values)
            print(f"rung: {describe_divergence(record)}; training stopped", flush=True)


class DivergenceGuardPlugin(BasePlugin):
    def get_training_args(self, cfg: Any) -> dict[str, Any]:
        # Log the step's own loss, NaN included (the default replaces it by an average).
        return {"logging_nan_inf_filter": False}

    def add_callbacks_pre_trainer(self, cfg: Any, model: Any) -> list[TrainerCallback]:
        return [DivergenceCallback(Path(cfg.output_dir))]
