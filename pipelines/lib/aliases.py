"""Aliases of a registered model: `challenger` (newest) and `champion` (best so far).

Every new version gets `challenger`. It becomes `champion` when there is no champion
yet, or when it beat the current champion on the same held-out rows: the evaluation
asks the champion as an extra candidate (`champion_for_evaluation`), and
`decide_promotion` compares the primary metric (higher is better, strictly). Every
alias move is recorded as a registered-model tag `rung.alias_move.NNNN` (JSON, read
back by `alias_history`) and as tags on the versions involved.
"""

from __future__ import annotations

import datetime
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipelines.lib import tracking

CHAMPION, CHALLENGER = "champion", "challenger"
MOVE_TAG = "rung.alias_move."
ADAPTER_FILE = "adapter_model.safetensors"


@dataclass(frozen=True)
class AliasMove:
    alias: str
    version: str
    previous: str | None
    reason: str
    at: str
    dagster_run_id: str


def registered_model_exists(client: Any, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        return False
    return True


def version_with_alias(client: Any, name: str, alias: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    if not registered_model_exists(client, name):
        return None
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def champion_for_evaluation(
    name: str, base_model_sha256: str, run_id: str, destination: Path
) -> dict[str, Any]:
    """The current champion, downloaded for evaluation as an extra candidate.

    Returns {version, run_id, adapter_dir} when it can answer the same held-out rows on the
    same base model; otherwise {version, skipped: why} (or {} when there is no champion).
    """
    client = tracking.configure_mlflow()
    champion = version_with_alias(client, name, CHAMPION)
    if champion is None:
        return {}
    info = {"version": str(champion.version), "run_id": champion.run_id}
    if champion.run_id == run_id:
        return {**info, "skipped": "the champion is this run's own adapter"}
    champion_base = champion.tags.get("rung.base_model_sha256")
    if champion_base != base_model_sha256:
        return {
            **info,
            "skipped": f"the champion (v{champion.version}) adapts another base "
            f"model (sha256 {str(champion_base)[:12]}…)",
        }
    import mlflow
    from mlflow.exceptions import MlflowException

    shutil.rmtree(destination, ignore_errors=True)
    try:
        local = Path(
            mlflow.artifacts.download_artifacts(
                f"models:/{name}/{champion.version}", dst_path=str(destination)
            )
        )
    except (MlflowException, OSError) as exc:
        return {**info, "skipped": f"its artifacts could not be downloaded ({exc})"}
    adapter = local / "artifacts" / "adapter"
    if not (adapter / ADAPTER_FILE).is_file():
        return {**info, "skipped": f"version {champion.version} holds no adapter"}
    return {**info, "adapter_dir": str(adapter)}


def decide_promotion(
    metric: str, tuned_score: float, champion_now: str | None, evaluated: dict[str, Any] | None
) -> tuple[bool, str]:
    """Should the new version become champion? (promote, reason); higher metric is better.

    `evaluated` is the champion the evaluation compared against: {version, score} (score
    on the same held-out rows), or None / {skipped} when it did not.
    """
    if champion_now is None:
        return True, "no champion yet: the first version of this model that passed the gate"
    evaluated = evaluated or {}
    if evaluated.get("version") != champion_now or "score" not in evaluated:
        why = evaluated.get("skipped") or (
            f"the evaluation compared against v{evaluated['version']}, but the champion is now "
            f"v{champion_now}"
            if evaluated.get("version")
            else "no champion when evaluated"
        )
        return False, (
            f"not compared with champion v{champion_now} on the same held-out rows "
            f"({why}): stays challenger"
        )
    score = evaluated["score"]
    if tuned_score > score:
        return True, (
            f"beats champion v{champion_now} on the same held-out rows: "
            f"{metric} {tuned_score:.4f} > {score:.4f}"
        )
    return False, (
        f"does not beat champion v{champion_now} on the same held-out rows: "
        f"{metric} {tuned_score:.4f} <= {score:.4f}: stays challenger"
    )


def now_utc() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def alias_history(name: str) -> list[AliasMove]:
    """Every recorded alias move of the registered model, oldest first."""
    client = tracking.configure_mlflow()
    if not registered_model_exists(client, name):
        return []
    tags = client.get_registered_model(name).tags
    return [AliasMove(**json.loads(tags[key])) for key in sorted(tags) if key.startswith(MOVE_TAG)]


def move_alias(
    client: Any, name: str, alias: str, version: str, reason: str, dagster_run_id: str
) -> AliasMove | None:
    """Point `alias` at `version` and record the move; None when it already points there."""
    current = version_with_alias(client, name, alias)
    previous = str(current.version) if current is not None else None
    if previous == version:
        return None
    move = AliasMove(alias, version, previous, reason, now_utc(), dagster_run_id)
    client.set_registered_model_alias(name, alias, version)
    sequence = len(alias_history(name)) + 1
    client.set_registered_model_tag(name, f"{MOVE_TAG}{sequence:04d}", json.dumps(asdict(move)))
    client.set_model_version_tag(name, version, f"rung.alias.{alias}.set", f"{move.at}: {reason}")
    if previous is not None:
        client.set_model_version_tag(
            name, previous, f"rung.alias.{alias}.removed", f"{move.at}: moved to v{version}"
        )
    return move
