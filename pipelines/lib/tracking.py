"""MLflow bookkeeping: one run per (recipe, Dagster run), tagged for lineage.

Every call through the client `configure_mlflow` returns is retried while the store is
temporarily unavailable (SQLite "database is locked" after MLflow's own 20 s busy wait,
a tracking server refusing connections after MLflow's own HTTP retries), with doubling
waits, for at most RUNG_MLFLOW_RETRY_S seconds (120) more; then `TrackingUnavailable`
names the store, the call and the cause. Only failures that left nothing written are
retried (a lock, a refused connection), so a retry never writes twice; nothing is
dropped silently: each call lands or the stage fails.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipelines import paths
from pipelines.lib import state_profile

EXPERIMENT = "rung"
TAG = "rung."  # prefix of rung's own tags
# MLflow 3's UI opens an experiment by its kind; rung's runs are model training, not GenAI
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


RETRY_ENV = "RUNG_MLFLOW_RETRY_S"
DEFAULT_RETRY_S = 120.0
# what a locked SQLite store or an unreachable server says (MLflow wraps both)
TRANSIENT_TEXT = (
    "database is locked",
    "Connection refused",
    "Failed to establish a new connection",
)
logger = logging.getLogger(__name__)


class TrackingUnavailable(RuntimeError):
    """The MLflow store stayed locked or unreachable for the whole retry budget."""


def _transient(exc: Exception) -> bool:
    return getattr(exc, "error_code", None) == "TEMPORARILY_UNAVAILABLE" or any(
        text in str(exc) for text in TRANSIENT_TEXT
    )


def with_retries(call: Callable[[], Any], what: str, store: str) -> Any:
    """call(), retried on transient store errors with waits of 1, 2, 4 ... 30 s until
    RUNG_MLFLOW_RETRY_S have passed; any other error is raised at once."""
    budget = float(os.environ.get(RETRY_ENV, DEFAULT_RETRY_S))
    started, wait, tries = time.monotonic(), 1.0, 0
    while True:
        tries += 1
        try:
            return call()
        except Exception as exc:
            if not _transient(exc):
                raise
            left = started + budget - time.monotonic()
            cause = str(exc).strip().splitlines()[0][:300]
            if left <= 0:
                raise TrackingUnavailable(
                    f"MLflow store {store}: {what} failed {tries} time(s) over "
                    f"{time.monotonic() - started:.0f} s ({RETRY_ENV}={budget:g}); the store "
                    f"is locked by another writer or unreachable: {cause}"
                ) from exc
            logger.warning("MLflow %s: %s; retrying in %.0f s", what, cause, min(wait, left))
            time.sleep(min(wait, left))
            wait = min(wait * 2, 30.0)


class RetryingClient:
    """An MlflowClient whose every method call goes through `with_retries`."""

    def __init__(self, client: Any, store: str) -> None:
        # a URI's user:password never reaches a message
        self._client, self._store = client, re.sub(r"//[^/@]*@", "//***@", store)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        def call(*args: Any, **kwargs: Any) -> Any:
            return with_retries(lambda: attribute(*args, **kwargs), name, self._store)

        return call


def configure_mlflow() -> Any:
    """Point MLflow at the profile's store (lib/state_profile.py: the embedded sqlite file,
    or a tracking server), with telemetry off; returns the client. The experiment exists
    afterwards, marked as model training for MLflow's UI; a server chooses where its
    artifacts go, the embedded store keeps them under the state dir."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    uri = state_profile.mlflow_tracking_uri()
    if not state_profile.mlflow_is_server(uri):
        paths.mlruns_dir().mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    client = RetryingClient(mlflow.MlflowClient(), uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        client.create_experiment(
            EXPERIMENT,
            artifact_location=state_profile.experiment_artifact_location(),
            tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
        )
    elif experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return client


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
    from mlflow.entities import RunTag

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
    log_batches(client, run_id, tags=[RunTag(k, str(v)) for k, v in all_tags.items()])
    return run_id


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def log_batches(
    client: Any,
    run_id: str,
    metrics: Sequence[Any] = (),
    params: Sequence[Any] = (),
    tags: Sequence[Any] = (),
) -> None:
    """MlflowClient.log_batch in chunks within MLflow's per-request limits."""
    from mlflow.utils.validation import MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH

    for chunk in _chunks(metrics, MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=chunk)
    for chunk in _chunks(params, MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, params=chunk)
    for chunk in _chunks(tags, MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, tags=chunk)


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
    from mlflow.entities import Metric
    from mlflow.utils.time import get_current_time_millis

    now = get_current_time_millis()
    log_batches(
        client, run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()]
    )


def log_params(client: Any, run_id: str, params: Mapping[str, Any]) -> None:
    """Log params that are new; MLflow refuses to change a param's value."""
    from mlflow.entities import Param
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    logged = client.get_run(run_id).data.params
    new = [
        Param(key, str(value)[:MAX_PARAM_VAL_LENGTH])
        for key, value in params.items()
        if key not in logged
    ]
    log_batches(client, run_id, params=new)


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
