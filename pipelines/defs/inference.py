"""The trainer environment, reached through Dagster Pipes: answering generation requests
(pipelines/worker/evaluate.py) and training (pipelines/worker/train.py)."""

import json
from pathlib import Path

import dagster as dg

from pipelines import paths
from pipelines.lib import launchers, tracking
from pipelines.lib.inference import Infer, Inference
from pipelines.lib.training_stage import Launch
from pipelines.worker import evaluate as evaluate_worker
from pipelines.worker import train as train_worker


def pipes_env(mlflow_run_id: str | None = None) -> dict[str, str]:
    """Environment of a trainer-env worker: the repo on its path, the run's MLflow target."""
    env = {"PYTHONPATH": str(paths.REPO_ROOT)}
    if mlflow_run_id:
        env.update(
            MLFLOW_TRACKING_URI=paths.mlflow_tracking_uri(),
            MLFLOW_EXPERIMENT_NAME=tracking.EXPERIMENT,
            MLFLOW_RUN_ID=mlflow_run_id,
        )
    return env


def _worker(module) -> list[str]:
    return [str(paths.TRAINER_PYTHON), "-m", module.__name__]


def pipes_infer(
    context: dg.AssetExecutionContext,
    client: dg.PipesSubprocessClient,
    folder: Path,
    *,
    base_model_dir: str,
    batch_size: int,
) -> Infer:
    """An `Infer` that answers in the trainer env, files exchanged through `folder`."""

    def infer(requests, adapters, *, mlflow_run_id=None, loss=None) -> Inference:
        requests_file, answers_file = folder / "requests.jsonl", folder / "answers.jsonl"
        result_file = folder / "inference.json"
        requests_file.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in requests), encoding="utf-8"
        )
        loss = loss or {}
        client.run(
            context=context,
            command=_worker(evaluate_worker),
            extras={
                "base_model_dir": base_model_dir,
                "adapters": adapters,
                "requests_file": str(requests_file),
                "answers_file": str(answers_file),
                "result_file": str(result_file),
                "heldout_file": loss.get("heldout_file"),
                "loss_models": loss.get("models", []),
                "sequence_len": loss.get("sequence_len", 0),
                "batch_size": batch_size,
            },
            env=pipes_env(mlflow_run_id),
        )
        with answers_file.open(encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle]
        result = json.loads(result_file.read_text())
        return Inference(
            answers={row["key"]: row["output"] for row in rows},
            costs={
                row["key"]: {"prompt_tokens": row["prompt_tokens"], "seconds": row["seconds"]}
                for row in rows
                if "seconds" in row
            },
            losses=result.get("losses", {}),
            timings=result.get("timings", {}),
            parameters=result.get("parameters") or {},
        )

    return infer


def pipes_launch(context: dg.AssetExecutionContext, client: dg.PipesSubprocessClient) -> Launch:
    """A `Launch` that runs `axolotl train` in the trainer env, logging into the MLflow run."""

    def launch(config_file: Path, log_file: Path, adapter_dir: Path, mlflow_run_id: str) -> None:
        command = launchers.read_launch_file(config_file)  # written beside the config
        client.run(
            context=context,
            command=_worker(train_worker),
            extras={
                "axolotl_config": str(config_file),
                "log_file": str(log_file),
                "adapter_dir": str(adapter_dir),
                "command": command.argv,
                "command_env": command.env,
            },
            env=pipes_env(mlflow_run_id),
        )

    return launch
