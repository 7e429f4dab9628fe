"""Launch the asset graph for a recipe in the persistent Dagster instance.

Runs launched here use the same DAGSTER_HOME as `make ui`, so they show in the
Dagster UI with their materializations and metadata.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines import paths
from pipelines.recipe import LoadedRecipe, RecipeError


def ensure_dagster_home() -> Path:
    """DAGSTER_HOME with the profile's dagster.yaml (local storage, or PostgreSQL when
    RUNG_DAGSTER_PG_URL is set); a dagster.yaml the user wrote is left alone."""
    from pipelines.lib import state_profile

    home = paths.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    wanted = state_profile.dagster_yaml()
    owned = not config.exists() or config.read_text().startswith(state_profile.DAGSTER_YAML_HEADER)
    if owned and (not config.exists() or config.read_text() != wanted):
        config.write_text(wanted)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


@dataclass(frozen=True)
class RunOutcome:
    success: bool  # every step ran; a NO-SHIP verdict is a success, a crash is not
    dagster_run_id: str
    outputs: dict[str, Any]  # asset name -> typed value, for the assets that materialized
    reused: list[str] = field(default_factory=list)  # assets whose value came from the cache
    failure: str | None = None  # the first failed step's cause, in a line or two

    @property
    def verdict(self) -> str | None:
        """SHIP / NO-SHIP after training, or 'USE <rung>' when the climb stopped before."""
        evaluation, cheap = self.outputs.get("evaluation"), self.outputs.get("cheap_rungs")
        if evaluation:
            return evaluation.verdict["label"]
        return cheap.label if cheap and cheap.winner else None

    @property
    def completed(self) -> bool:
        """The pipeline did its job: shipped, or evaluated honestly and refused to ship."""
        return self.success


def _failure(result: Any) -> str | None:
    """The cause of the first failed step: a stage's own message, not a stack trace."""
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            if data.user_failure_data and data.user_failure_data.description:
                return f"{event.step_key}: {data.user_failure_data.description}"
            error = data.error.cause if data.error and data.error.cause else data.error
            return f"{event.step_key}: {error.message.strip() if error else 'failed'}"
    return None


def job_assets() -> list[str]:
    """The names of the job's assets, upstream first."""
    ensure_dagster_home()
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    # the job's own assets: not the ones of other groups (monitoring watches served models)
    selected = defs.resolve_job_def("fine_tune").asset_layer.selected_asset_keys
    return [
        key.path[-1]
        for key in graph.toposorted_asset_keys
        if graph.get(key).is_materializable and key in selected
    ]


def _reused(result: Any, assets: Sequence[str]) -> list[str]:
    reused = []
    for name in assets:
        for event in result.asset_materializations_for_node(name):
            cache = event.metadata.get("cache")
            if cache is not None and getattr(cache, "value", cache) == "reused":
                reused.append(name)
    return reused


def run_recipe(
    recipe: LoadedRecipe,
    log_level: str = "INFO",
    *,
    tags: Mapping[str, str] | None = None,
    assets: Sequence[str] | None = None,
) -> RunOutcome:
    """Materialize the recipe's partition (every asset, or `assets`), in process, in the
    persistent instance; `tags` become Dagster run tags. One launch of a recipe at a time:
    a second one, while this runs, raises RecipeBusy naming this one (lib/run_lock.py)."""
    if recipe.path.parent != paths.recipes_dir():
        raise RecipeError(
            f"{recipe.path}: recipes are launched from {paths.recipes_dir()} (the file stem is the "
            "partition key); copy the recipe there"
        )
    from pipelines.lib.run_lock import recipe_lock

    run_id = str(uuid.uuid4())  # chosen here so that the lock can name it
    with recipe_lock(recipe.id, run_id):
        ensure_dagster_home()
        import dagster as dg

        from pipelines.definitions import defs

        job = defs.resolve_job_def("fine_tune")
        names = list(assets or job_assets())
        result = job.execute_in_process(
            partition_key=recipe.id,
            instance=dg.DagsterInstance.get(),
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            raise_on_error=False,
            run_id=run_id,
            tags=dict(tags or {}),
            asset_selection=[dg.AssetKey(name) for name in assets] if assets else None,
        )
        outputs = {}  # read under the lock: another launch would overwrite the stored outputs
        for name in names:
            try:
                outputs[name] = result.output_for_node(name)
            except Exception:  # the step failed, was skipped, or registered nothing
                continue
        return RunOutcome(
            success=result.success,
            dagster_run_id=result.run_id,
            outputs=outputs,
            reused=_reused(result, names),
            failure=None if result.success else _failure(result),
        )
