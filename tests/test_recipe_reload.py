"""A recipe file added after the code location loaded appears when it is loaded again
(what the Dagster UI's "Reload definitions" does: it re-imports the code location)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pipelines import paths

FIXTURES = Path(__file__).parent / "fixtures" / "recipes"
LOAD = (
    "import json; from pipelines.definitions import defs; "
    "print(json.dumps(defs.resolve_job_def('fine_tune').partitions_def.get_partition_keys()))"
)


def partition_keys(recipes: Path, state: Path) -> list[str]:
    """The fine_tune job's partitions as a fresh load of the code location sees them."""
    env = {**os.environ, "RUNG_RECIPES_DIR": str(recipes), "RUNG_STATE_DIR": str(state)}
    done = subprocess.run(
        [sys.executable, "-c", LOAD],
        cwd=paths.REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_recipe_added_after_the_first_load_is_a_partition_after_a_reload(tmp_path: Path):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    shutil.copy(FIXTURES / "address-tiny.yaml", recipes / "address-tiny.yaml")
    assert partition_keys(recipes, tmp_path / "state") == ["address-tiny"]

    shutil.copy(FIXTURES / "address-tiny.yaml", recipes / "address-new-idea.yaml")
    assert partition_keys(recipes, tmp_path / "state") == ["address-new-idea", "address-tiny"]
