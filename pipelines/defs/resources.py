"""Resources: the trainer environment is reached through Dagster Pipes."""

from __future__ import annotations

import dagster as dg

from pipelines import paths
from pipelines.lib.offline import OFFLINE_ENV


def pipes_subprocess_client() -> dg.PipesSubprocessClient:
    """Runs worker modules with the trainer venv's Python, offline, from the repo root."""
    return dg.PipesSubprocessClient(cwd=str(paths.REPO_ROOT), env=dict(OFFLINE_ENV))
