"""Every path rung uses, in one place.

The repository holds code, recipes and the committed `data.dvc`. Generated state
(MLflow store, Dagster home, run outputs) lives under a *state root*, the repo by
default; tests point `RUNG_STATE_DIR` at a temporary folder so they never touch
the user's experiments. Big downloaded artefacts (the converted base model, the
DVC remote) live in a cache outside git, `RUNG_CACHE_DIR` or ~/.cache/rung.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
DATA_DVC_FILE = REPO_ROOT / "data.dvc"
TRAINER_PYTHON = REPO_ROOT / ".venv-train" / "bin" / "python"


def recipes_dir() -> Path:
    return Path(os.environ.get("RUNG_RECIPES_DIR", REPO_ROOT / "recipes")).resolve()


def state_dir() -> Path:
    return Path(os.environ.get("RUNG_STATE_DIR", REPO_ROOT)).resolve()


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "rung"
    return Path(os.environ.get("RUNG_CACHE_DIR", default)).resolve()


def mlruns_dir() -> Path:
    return state_dir() / "mlruns"


def mlflow_tracking_uri() -> str:
    return f"sqlite:///{mlruns_dir() / 'mlflow.db'}"


def mlflow_artifacts_dir() -> Path:
    return mlruns_dir() / "artifacts"


def dagster_home() -> Path:
    return state_dir() / ".dagster"


def runs_dir() -> Path:
    """Outputs of pipeline runs: runs/<recipe id>/<dagster run id>/<asset>/."""
    return state_dir() / "runs"


def models_cache_dir() -> Path:
    return cache_dir() / "models"


def dvc_remote_dir() -> Path:
    return cache_dir() / "dvc-remote"
