"""`rung reproduce`: re-run a finished run from its recorded recipe and raw data version.

The parent process restores the workspace (pipelines/lib/reproduction.py) and starts
a child process with RUNG_RECIPES_DIR and RUNG_DATA_ROOT pointing into it, so the
child's Dagster definitions see the restored recipe as a partition and its assets
read the restored data. The child runs every asset except registration, recomputing
everything (no cache), in the same Dagster instance and MLflow store as any run: the
reproduction shows in both UIs, tagged with the run it reproduces.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pipelines.lib import reproduction


@dataclass(frozen=True)
class Reproduction:
    original_run_id: str
    reproduced_run_id: str | None
    dagster_run_id: str | None
    comparison: reproduction.Comparison | None


def reproduce(target: str) -> Reproduction:
    """Restore, re-run and compare; raises ReproduceError / DataVersionNotFound when it can't."""
    run_id = reproduction.resolve_run(target)
    original = reproduction.load_original(run_id)
    recipe_file = reproduction.prepare_workspace(original)
    workspace = recipe_file.parent.parent
    print(
        f"rung: reproducing MLflow run {run_id} (recipe {original.recipe_id}, data version "
        f"{original.data_md5}) in {workspace}",
        flush=True,
    )
    result_file = workspace / "result.json"
    env = {
        **os.environ,
        "RUNG_RECIPES_DIR": str(recipe_file.parent),
        "RUNG_DATA_ROOT": str(workspace),
    }
    subprocess.run(
        [sys.executable, "-m", "pipelines.reproduce", str(recipe_file), run_id, str(result_file)],
        env=env,
        check=False,
    )
    if not result_file.is_file():
        return Reproduction(run_id, None, None, None)
    result = json.loads(result_file.read_text())
    new_run = result.get("mlflow_run_id")
    comparison = reproduction.compare_runs(run_id, new_run) if new_run else None
    return Reproduction(run_id, new_run, result["dagster_run_id"], comparison)


def _child(recipe_file: str, original_run_id: str, result_file: str) -> int:
    from pipelines.launch import job_assets, run_recipe
    from pipelines.lib.offline import apply_offline_env
    from pipelines.recipe import load_recipe
    from pipelines.run_tags import CACHE_TAG, REPRODUCES_TAG

    apply_offline_env()
    recipe = load_recipe(recipe_file)
    outcome = run_recipe(
        recipe,
        tags={REPRODUCES_TAG: original_run_id, CACHE_TAG: "off"},
        # a reproduction re-runs and compares; it never registers anything
        assets=[a for a in job_assets() if a not in ("registered_adapter", "registered_prompt")],
    )
    # the MLflow run of the re-run: the training's, or the cheap rungs' when it stopped early
    tracked = outcome.outputs.get("training_run") or outcome.outputs.get("cheap_rungs")
    Path(result_file).write_text(
        json.dumps(
            {
                "dagster_run_id": outcome.dagster_run_id,
                "completed": outcome.completed,
                "mlflow_run_id": tracked.mlflow_run_id if tracked else None,
                "verdict": outcome.verdict,
            }
        )
    )
    return 0 if outcome.completed else 1


if __name__ == "__main__":
    sys.exit(_child(*sys.argv[1:4]))
