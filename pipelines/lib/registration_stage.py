"""The registered_adapter stage: an adapter that passed the gate becomes a version of the
recipe's registered model (models:/<name>@champion), with its lineage and reports.
Anything that did not SHIP is refused here too, whatever called it."""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path

from pipelines.lib import registry, tracking
from pipelines.lib.asset_values import (
    BaseModelValue,
    Evaluation,
    RegisteredAdapter,
    Split,
    StageError,
    TrainingRun,
)
from pipelines.lib.drift import PROFILE_ARTIFACT, write_reference_profile
from pipelines.recipe import LoadedRecipe


def not_registered_reason(evaluation: Evaluation) -> str | None:
    """Why nothing may be registered for this evaluation (None: it shipped)."""
    if evaluation.ships:
        return None
    failed = [r for r in evaluation.verdict["reasons"] if r.startswith("FAIL")]
    return f"verdict {evaluation.verdict['label']}: nothing registered ({'; '.join(failed)})"


def register_shipped_adapter(
    recipe: LoadedRecipe,
    base_model: BaseModelValue,
    split: Split,
    training_run: TrainingRun,
    evaluation: Evaluation,
    *,
    dagster_run_id: str,
) -> RegisteredAdapter:
    reason = not_registered_reason(evaluation)
    if reason:
        raise StageError(reason)
    run_id, adapter_dir = training_run.mlflow_run_id, Path(training_run.adapter_dir)
    with tracking.failing_marks_run(run_id) as client:
        for name in registry.ADAPTER_FILES:
            client.log_artifact(run_id, str(adapter_dir / name), "adapter")
        artifact_uri = client.get_run(run_id).info.artifact_uri + "/adapter"
    report_dir = Path(evaluation.report_file).parent
    with tempfile.TemporaryDirectory() as profile_dir:
        # what `rung monitor` compares the served version's traffic with (lib/drift.py)
        profile = write_reference_profile(
            Path(evaluation.predictions_file),
            recipe.spec.eval.task,
            recipe.spec.eval.labels,
            Path(profile_dir),
        )
        done = registry.register_adapter(
            name=recipe.registered_name,
            run_id=run_id,
            adapter_dir=adapter_dir,
            base_model=base_model.model_dump(),
            report=evaluation.report,
            evaluated_champion=evaluation.champion,
            attachments={
                "data_card": [Path(split.data_card).parent],
                "evaluation": [report_dir / "report.json", report_dir / "report.md"],
                PROFILE_ARTIFACT: [profile],
            },
            dagster_run_id=dagster_run_id,
        )
    return RegisteredAdapter(
        mlflow_run_id=run_id,
        adapter_uri=artifact_uri,
        adapter_dir=str(adapter_dir),
        registered_model=done.name,
        version=done.version,
        model_uri=done.model_uri,
        aliases=done.aliases,
        created=done.created,
        promotion=done.decision,
        alias_moves=[asdict(move) for move in done.moves],
    )
