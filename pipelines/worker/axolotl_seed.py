"""Axolotl plugin (trainer env): seed every RNG before the LoRA weights are created, and
log Axolotl's training arguments as one MLflow artifact instead of hundreds of params.

Axolotl hands `seed` to the Hugging Face Trainer, which seeds only when it is
built, after the model and its adapter exist; the adapter's random initial
weights then differ from run to run, and so does the trained adapter. Seeding
here, before the model and again before the adapter are built, makes a CPU run
repeat exactly (same data, recipe and threads), which `rung reproduce` relies on.

transformers' MLflowCallback logs every TrainingArguments field and the whole
model config as params (~270 of them) into the run the pipeline created. The run
already holds the recipe as params; here that callback is swapped for one that
logs the same per-step metrics to the same run (MLFLOW_RUN_ID) but writes the
arguments to `axolotl/training_arguments.json`.

Rendered into every Axolotl config by pipelines/lib/axolotl_config.py.
"""

from __future__ import annotations

import json
from typing import Any

from axolotl.integrations.base import BasePlugin
from transformers.integrations import MLflowCallback

ARGUMENTS_ARTIFACT = "axolotl/training_arguments.json"


class _WithoutParams:
    """The mlflow module, except that `log_params` does nothing."""

    def __init__(self, mlflow: Any) -> None:
        self._mlflow = mlflow

    def __getattr__(self, name: str) -> Any:
        return getattr(self._mlflow, name)

    def log_params(self, *args: Any, **kwargs: Any) -> None:
        return None


class ArgumentsArtifactMLflowCallback(MLflowCallback):
    """MLflowCallback that logs metrics as usual and the training arguments (plus the
    model config) as one JSON artifact rather than as params."""

    def setup(self, args: Any, state: Any, model: Any) -> None:
        mlflow = self._ml_flow
        self._ml_flow = _WithoutParams(mlflow)
        try:
            super().setup(args, state, model)  # attaches to MLFLOW_RUN_ID, logs no params
        finally:
            self._ml_flow = mlflow
        if not state.is_world_process_zero or mlflow.active_run() is None:
            return
        arguments = args.to_dict()
        if getattr(model, "config", None) is not None:
            arguments = {"model_config": model.config.to_dict(), **arguments}
        mlflow.log_text(
            json.dumps(arguments, indent=2, sort_keys=True, default=str), ARGUMENTS_ARTIFACT
        )


class SeedPlugin(BasePlugin):
    def _seed(self, cfg: Any) -> None:
        from transformers import set_seed

        set_seed(int(cfg.seed))

    def pre_model_load(self, cfg: Any) -> None:
        self._seed(cfg)

    def pre_lora_load(self, cfg: Any, model: Any) -> None:
        self._seed(cfg)

    def post_trainer_create(self, cfg: Any, trainer: Any) -> None:
        """Swap transformers' MLflowCallback (added by `report_to: mlflow`) for ours."""
        for callback in list(trainer.callback_handler.callbacks):
            if type(callback) is MLflowCallback:
                trainer.remove_callback(callback)
                trainer.add_callback(ArgumentsArtifactMLflowCallback())
