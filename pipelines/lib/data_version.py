"""DVC versions `data/`; its directory md5 in `data.dvc` is the raw data version.

DVC commands take a repository lock that fails instead of waiting, so every call
goes through `run_dvc`, which serializes them within the process and retries
briefly when another process holds the lock.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from pipelines import paths

_LOCK = threading.Lock()


class DataVersionError(RuntimeError):
    pass


def _dvc_executable() -> str:
    candidate = Path(sys.executable).with_name("dvc")
    return str(candidate) if candidate.exists() else "dvc"


def run_dvc(*args: str, attempts: int = 20) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    with _LOCK:
        for attempt in range(attempts):
            done = subprocess.run(
                [_dvc_executable(), *args], cwd=paths.REPO_ROOT, env=env,
                capture_output=True, text=True,
            )
            if done.returncode == 0:
                return done.stdout
            if "lock" not in done.stderr.lower() or attempt == attempts - 1:
                raise DataVersionError(f"dvc {' '.join(args)} failed:\n{done.stderr.strip()}")
            time.sleep(0.5)
    raise AssertionError("unreachable")


def recorded_md5(dvc_file: Path = paths.DATA_DVC_FILE) -> str:
    """The directory md5 that `data.dvc` records (without DVC's '.dir' suffix)."""
    if not dvc_file.is_file():
        raise DataVersionError(f"{dvc_file} is missing: run `make data` to import and version data/")
    (out,) = yaml.safe_load(dvc_file.read_text())["outs"]
    return out["md5"].removesuffix(".dir")


def workspace_matches_dvc() -> bool:
    """True when data/ holds exactly the version data.dvc records."""
    status = json.loads(run_dvc("status", "--json", str(paths.DATA_DVC_FILE.name)) or "{}")
    return not status


def version_data_dir() -> str:
    """`dvc add data` and push to the local remote; returns the new md5."""
    run_dvc("add", "--quiet", "data")
    run_dvc("push", "--quiet", str(paths.DATA_DVC_FILE.name))
    return recorded_md5()


def configure_local_remote() -> None:
    """A default DVC remote in the cache, outside git (machine-local config)."""
    paths.dvc_remote_dir().mkdir(parents=True, exist_ok=True)
    run_dvc("remote", "add", "--local", "--force", "--default", "local", str(paths.dvc_remote_dir()))


def restore_recorded_version() -> bool:
    """True when data/ holds the version data.dvc records: already there, or restored
    from the DVC cache or the local remote."""
    if not paths.DATA_DVC_FILE.exists():
        return False
    if workspace_matches_dvc():
        return True
    try:
        run_dvc("pull", "--quiet", paths.DATA_DVC_FILE.name)
    except DataVersionError:
        return False
    return workspace_matches_dvc()
