"""Every path rung uses, in one place.

The repository holds code, recipes and the committed `data.dvc`. Generated state
(MLflow store, Dagster home, run outputs) lives under a *state root*, the repo by
default; tests point `RUNG_STATE_DIR` at a temporary folder so they never touch
the user's experiments. Big downloaded artefacts (the converted base model, the
DVC remote) live in a cache outside git, `RUNG_CACHE_DIR` or ~/.cache/rung.
`RUNG_DATA_ROOT` moves where recipes' data sources are read (a reproduction
reads a restored data version there, never touching data/).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
DATA_DVC_FILE = REPO_ROOT / "data.dvc"
ADDRESS_CORPUS = DATA_DIR / "address" / "addresses.jsonl"
SENTIMENT_CORPUS = DATA_DIR / "sentiment" / "movie_reviews.csv"
KNOWLEDGE_CORPUS = DATA_DIR / "knowledge" / "countries.jsonl"  # retrieval passages
KNOWLEDGE_QUESTIONS = DATA_DIR / "knowledge" / "questions.jsonl"  # their questions
TRAINER_PYTHON = REPO_ROOT / ".venv-train" / "bin" / "python"
TRAINER_MLFLOW = REPO_ROOT / ".venv-train" / "bin" / "mlflow"
# The registered model's code (MLflow "models from code"; runs in the trainer env).
CHAT_MODEL_FILE = REPO_ROOT / "pipelines" / "worker" / "chat_model.py"


def recipes_dir() -> Path:
    return Path(os.environ.get("RUNG_RECIPES_DIR", REPO_ROOT / "recipes")).resolve()


def sources_root() -> Path:
    """Where a recipe's `data.sources` (e.g. data/address/x.jsonl) are found: the repository,
    or `RUNG_DATA_ROOT` (`rung reproduce` restores an old data version into its own folder)."""
    return Path(os.environ.get("RUNG_DATA_ROOT", REPO_ROOT)).resolve()


def sources_root_overridden() -> bool:
    return sources_root() != REPO_ROOT.resolve()


def state_dir() -> Path:
    return Path(os.environ.get("RUNG_STATE_DIR", REPO_ROOT)).resolve()


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "rung"
    return Path(os.environ.get("RUNG_CACHE_DIR", default)).resolve()


def mlruns_dir() -> Path:
    return state_dir() / "mlruns"


def mlflow_tracking_uri() -> str:
    """The embedded MLflow store; RUNG_MLFLOW_URI replaces it (pipelines/lib/state_profile.py)."""
    return f"sqlite:///{mlruns_dir() / 'mlflow.db'}"


def mlflow_artifacts_dir() -> Path:
    return mlruns_dir() / "artifacts"


def dagster_home() -> Path:
    """DAGSTER_HOME; its storage moves to PostgreSQL with RUNG_DAGSTER_PG_URL."""
    return state_dir() / ".dagster"


def runs_dir() -> Path:
    """Outputs of pipeline runs: runs/<recipe id>/<dagster run id>/<asset>/."""
    return state_dir() / "runs"


def asset_cache_dir() -> Path:
    """Outputs of expensive assets by cache key: a re-run with the same inputs reuses them."""
    return runs_dir() / "_cache"


def reproductions_dir() -> Path:
    """`rung reproduce` workspaces: the restored recipe and raw data version of a run."""
    return state_dir() / "reproductions"


def traffic_dir() -> Path:
    """What `rung serve` answered: one JSONL log per served model (`rung monitor` reads it)."""
    return state_dir() / "traffic"


def models_cache_dir() -> Path:
    return cache_dir() / "models"


def dvc_remote_dir() -> Path:
    """The embedded DVC remote; RUNG_DVC_REMOTE_URL replaces it (lib/state_profile.py)."""
    return cache_dir() / "dvc-remote"


def display_path(path: Path) -> Path:
    """A path as people read it in messages: relative to the repository when inside it."""
    path = Path(path).resolve()
    return path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
