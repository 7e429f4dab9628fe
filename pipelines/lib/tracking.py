"""MLflow bookkeeping: one run per (recipe, Dagster run), tagged for lineage."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipelines import paths

EXPERIMENT = "rung"
TAG = "rung."  # prefix of rung's own tags


def configure_mlflow() -> Any:
    """Point MLflow at the project store, with telemetry off; returns the client."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    paths.mlruns_dir().mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(paths.mlflow_tracking_uri())
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        mlflow.create_experiment(
            EXPERIMENT, artifact_location=paths.mlflow_artifacts_dir().as_uri()
        )
    return mlflow.MlflowClient()


def git_state(repo: Path = paths.REPO_ROOT) -> dict[str, str]:
    """Commit and dirty flag of the code that ran ('unknown' outside a git checkout)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    return {"git_commit": commit, "git_dirty": str(bool(dirty)).lower()}


def start_run(recipe_id: str, dagster_run_id: str, tags: Mapping[str, str]) -> str:
    """The MLflow run for this (recipe, Dagster run): reused if it exists, else created."""
    client = configure_mlflow()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    existing = client.search_runs(
        [experiment.experiment_id],
        filter_string=(
            f"tags.`{TAG}recipe_id` = '{recipe_id}' and "
            f"tags.`{TAG}dagster_run_id` = '{dagster_run_id}'"
        ),
        max_results=1,
    )
    if existing:
        run_id = existing[0].info.run_id
    else:
        run = client.create_run(experiment.experiment_id, run_name=recipe_id)
        run_id = run.info.run_id
    all_tags = {f"{TAG}recipe_id": recipe_id, f"{TAG}dagster_run_id": dagster_run_id, **tags}
    for key, value in all_tags.items():
        client.set_tag(run_id, key, str(value))
    return run_id


@contextmanager
def failing_marks_run(run_id: str) -> Iterator[Any]:
    """Yield a client; any exception marks the MLflow run FAILED before it propagates."""
    client = configure_mlflow()
    try:
        yield client
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise


def log_metrics(client: Any, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
    for key, value in metrics.items():
        client.log_metric(run_id, key, float(value), step=step)


def log_params(client: Any, run_id: str, params: Mapping[str, Any]) -> None:
    """Log params that are new; MLflow refuses to change a param's value."""
    run = client.get_run(run_id)
    for key, value in params.items():
        if key not in run.data.params:
            client.log_param(run_id, key, str(value)[:6000])


def flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(flatten(f"{prefix}.{key}" if prefix else str(key), sub))
        return out
    return {prefix: value}


def finish_run(run_id: str) -> None:
    configure_mlflow().set_terminated(run_id, status="FINISHED")


def run_exists(run_id: str) -> bool:
    """True when the MLflow run is in the store and not deleted."""
    from mlflow.exceptions import MlflowException

    try:
        run = configure_mlflow().get_run(run_id)
    except MlflowException:
        return False
    return run.info.lifecycle_stage == "active"
