"""The trainer environment, reached through Dagster Pipes: answering generation requests
(pipelines/worker/evaluate.py) and training (pipelines/worker/train.py), the latter as a
local subprocess or in a Kubernetes pod."""

import json
from pathlib import Path

import dagster as dg
from dagster_k8s import PipesK8sClient

from pipelines import paths
from pipelines.lib import k8s_pod, launchers, state_profile, tracking
from pipelines.lib.inference import Infer, Inference
from pipelines.lib.training_stage import Launch
from pipelines.recipe import TrainSection
from pipelines.worker import evaluate as evaluate_worker
from pipelines.worker import train as train_worker


def pipes_env(mlflow_run_id: str | None = None) -> dict[str, str]:
    """Environment of a trainer-env worker: the repo on its path, the run's MLflow target."""
    env = {"PYTHONPATH": str(paths.REPO_ROOT)}
    if mlflow_run_id:
        env.update(
            MLFLOW_TRACKING_URI=state_profile.mlflow_tracking_uri(),
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
        client.run(
            context=context,
            command=_worker(train_worker),
            extras=_train_extras(config_file, log_file, adapter_dir),
            env=pipes_env(mlflow_run_id),
        )

    return launch


def _train_extras(config_file: Path, log_file: Path, adapter_dir: Path) -> dict:
    command = launchers.read_launch_file(config_file)  # written beside the config
    return {
        "axolotl_config": str(config_file),
        "log_file": str(log_file),
        "adapter_dir": str(adapter_dir),
        "command": command.argv,
        "command_env": command.env,
    }


def pipes_k8s_launch(
    context: dg.AssetExecutionContext,
    client: PipesK8sClient,
    settings: k8s_pod.K8sSettings,
    recipe_id: str,
    train: TrainSection,
) -> Launch:
    """A `Launch` that runs the same worker and `axolotl train` command in a pod of the
    trainer image (the command was rendered for the pod: see k8s_pod.trainer_host)."""

    def launch(config_file: Path, log_file: Path, adapter_dir: Path, mlflow_run_id: str) -> None:
        meta, spec = k8s_pod.pod_body(
            settings,
            train,
            recipe_id=recipe_id,
            command=k8s_pod.worker_command(train_worker.__name__),
            mlflow_run_id=mlflow_run_id,
            mlflow_experiment=tracking.EXPERIMENT,
        )
        client.run(
            context=context,
            namespace=settings.namespace,
            extras=_train_extras(config_file, log_file, adapter_dir),
            base_pod_meta=meta,
            base_pod_spec=spec,
        )

    return launch
