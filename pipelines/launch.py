"""Launch the asset graph for a recipe in the persistent Dagster instance.

Runs launched here use the same DAGSTER_HOME as `make ui`, so they show in the
Dagster UI with their materializations and metadata.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines import paths
from pipelines.recipe import LoadedRecipe, RecipeError

DAGSTER_YAML = """\
# Written by rung. Local state for the Dagster UI and CLI runs.
telemetry:
  enabled: false
"""


def ensure_dagster_home() -> Path:
    home = paths.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


@dataclass(frozen=True)
class RunOutcome:
    success: bool  # every step ran and every check passed
    dagster_run_id: str
    outputs: dict[str, Any]  # asset name -> value, for the assets that materialized

    @property
    def verdict(self) -> str | None:
        evaluation = self.outputs.get("evaluation")
        return evaluation["verdict"]["label"] if evaluation else None

    @property
    def completed(self) -> bool:
        """The pipeline did its job: shipped, or evaluated honestly and refused to ship."""
        return self.success or self.verdict == "NO-SHIP"


ASSETS = (
    "base_model",
    "raw_data",
    "cleaned_data",
    "split",
    "training_set",
    "training_run",
    "evaluation",
    "registered_adapter",
)


# Run tags the assets read (see pipelines/defs/common.py).
CACHE_TAG = "rung/cache"  # "refresh": recompute and store; "off": recompute, store nothing
REPRODUCES_TAG = "rung/reproduces"  # the MLflow run a reproduction re-runs


def run_recipe(
    recipe: LoadedRecipe,
    log_level: str = "INFO",
    *,
    tags: Mapping[str, str] | None = None,
    assets: Sequence[str] | None = None,
) -> RunOutcome:
    """Materialize the recipe's partition (every asset, or `assets`), in process, in the
    persistent instance; `tags` become Dagster run tags."""
    if recipe.path.parent != paths.recipes_dir():
        raise RecipeError(
            f"{recipe.path}: recipes are launched from {paths.recipes_dir()} (the file stem is the "
            "partition key); copy the recipe there"
        )
    ensure_dagster_home()
    import dagster as dg

    from pipelines.definitions import defs

    job = defs.resolve_job_def("fine_tune")
    result = job.execute_in_process(
        partition_key=recipe.id,
        instance=dg.DagsterInstance.get(),
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        raise_on_error=False,
        tags=dict(tags or {}),
        asset_selection=[dg.AssetKey(name) for name in assets] if assets else None,
    )
    outputs = {}
    for name in assets or ASSETS:
        try:
            outputs[name] = result.output_for_node(name)
        except Exception:  # the step failed or was skipped: no output to show
            continue
    return RunOutcome(success=result.success, dagster_run_id=result.run_id, outputs=outputs)
