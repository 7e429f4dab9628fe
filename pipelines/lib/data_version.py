"""DVC versions `data/`; its directory md5 in `data.dvc` is the raw data version.

DVC commands take a repository lock that fails instead of waiting, so every call
goes through `run_dvc`, which serializes them within the process and retries
briefly when another process holds the lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from pipelines import paths
from pipelines.lib import state_profile

_LOCK = threading.Lock()


class DataVersionError(RuntimeError):
    pass


def _dvc_executable() -> str:
    candidate = Path(sys.executable).with_name("dvc")
    return str(candidate) if candidate.exists() else "dvc"


def run_dvc(*args: str, attempts: int = 20, cwd: Path | None = None) -> str:
    """`dvc ARGS` in the repository (or the DVC repo `cwd`); credentials come from the
    environment (AWS_ACCESS_KEY_ID, ...), never from arguments."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    with _LOCK:
        for attempt in range(attempts):
            done = subprocess.run(
                [_dvc_executable(), *args],
                cwd=cwd or paths.REPO_ROOT,
                env=env,
                capture_output=True,
                text=True,
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
        raise DataVersionError(
            f"{dvc_file} is missing: run `make data` to import and version data/"
        )
    (out,) = yaml.safe_load(dvc_file.read_text())["outs"]
    return out["md5"].removesuffix(".dir")


def workspace_matches_dvc() -> bool:
    """True when data/ holds exactly the version data.dvc records, by content: every file
    is hashed (`dvc status` trusts file timestamps, and `dvc checkout` copies a corrupted
    cache object without checking it)."""
    if not paths.DATA_DIR.is_dir():
        return False
    return directory_md5(paths.DATA_DIR) == recorded_md5(paths.DATA_DVC_FILE)


def version_data_dir() -> str:
    """`dvc add data` and push to the profile's remote; returns the new md5."""
    run_dvc("add", "--quiet", "data")
    push_recorded_version()
    return recorded_md5()


def configure_remote(cwd: Path | None = None) -> state_profile.DvcRemote:
    """The profile's DVC remote (lib/state_profile.py), in the untracked .dvc/config.local
    of the repository (or of the DVC repo `cwd`) and made the default: the local folder in
    the cache, or the shared URL with its endpoint. Keys stay in the environment."""
    remote = state_profile.dvc_remote()
    if remote.is_local:
        Path(remote.url).mkdir(parents=True, exist_ok=True)
    run_dvc("remote", "add", "--local", "--force", "--default", remote.name, remote.url, cwd=cwd)
    if remote.endpoint:
        run_dvc("remote", "modify", "--local", remote.name, "endpointurl", remote.endpoint, cwd=cwd)
    return remote


def push_recorded_version() -> None:
    """Push the version data.dvc records to the profile's remote (a no-op when it is there)."""
    remote = configure_remote()
    if _object(object_stores(), recorded_md5() + ".dir") is None and workspace_matches_dvc():
        run_dvc("commit", "--force", "--quiet", paths.DATA_DVC_FILE.name)  # cache data/ first
    run_dvc("push", "--quiet", "-r", remote.name, str(paths.DATA_DVC_FILE.name))


def restore_recorded_version() -> bool:
    """True when data/ holds the version data.dvc records: already there, or restored
    from the DVC cache or the local remote."""
    if not paths.DATA_DVC_FILE.exists():
        return False
    if workspace_matches_dvc():
        return True
    remote = configure_remote()
    for force in ((), ("--force",)):  # a second try replaces what a corrupt copy left
        try:
            run_dvc("pull", "--quiet", "-r", remote.name, *force, paths.DATA_DVC_FILE.name)
        except DataVersionError:
            return False
        if workspace_matches_dvc():
            return True
    return False


class DataVersionNotFound(DataVersionError):
    """A recorded data version that is in neither the DVC cache nor the remote."""


def directory_md5(folder: Path) -> str:
    """DVC's directory md5 of `folder`: md5 of the JSON list of {md5, relpath} of its files,
    sorted by path (the same bytes as DVC's `<md5>.dir` manifest)."""
    entries = [
        {"md5": _file_md5(file), "relpath": file.relative_to(folder).as_posix()}
        for file in sorted(p for p in folder.rglob("*") if p.is_file())
    ]
    entries.sort(key=lambda entry: entry["relpath"])
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest()


def _file_md5(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "md5").hexdigest()


def current_data_version() -> str:
    """The raw data version the recipes read: data.dvc's md5 when data/ matches it; under
    RUNG_DATA_ROOT (a reproduction) the md5 of the restored data/ folder itself."""
    if paths.sources_root_overridden():
        folder = paths.sources_root() / "data"
        if not folder.is_dir():
            raise DataVersionError(f"RUNG_DATA_ROOT={paths.sources_root()} has no data/ folder")
        return directory_md5(folder)
    if not workspace_matches_dvc():
        raise DataVersionError(
            "data/ differs from the version recorded in data.dvc: run `dvc add data` to record "
            "a new version, or `dvc checkout data.dvc` to restore the recorded one"
        )
    return recorded_md5()


def object_stores() -> list[Path]:
    """Where DVC keeps file contents by md5 on this machine: the repository's cache."""
    return [paths.REPO_ROOT / ".dvc" / "cache"]


def fetch_data_version(md5: str, workdir: Path) -> Path:
    """Pull data version `md5` from the profile's DVC remote through DVC itself into an
    empty DVC cache: a scratch DVC repo in `workdir` whose `data.dvc` names the version.
    Returns that cache folder (its objects are checked when restored)."""
    remote = state_profile.dvc_remote()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    run_dvc("init", "--quiet", "--no-scm", cwd=workdir)
    run_dvc("config", "core.analytics", "false", cwd=workdir)
    configure_remote(cwd=workdir)
    (workdir / "data.dvc").write_text(
        yaml.safe_dump({"outs": [{"md5": f"{md5}.dir", "path": "data", "hash": "md5"}]})
    )
    try:
        run_dvc("fetch", "--quiet", "-r", remote.name, "data.dvc", cwd=workdir, attempts=1)
    except DataVersionError as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        raise DataVersionNotFound(
            f"data version {md5} is not in the DVC cache or remote: this machine's cache lacks "
            f"it, and DVC could not fetch it from remote '{remote.name}' ({remote.url}): "
            "DVC's error below says whether "
            "the remote is unreachable, refuses the keys, or lacks the version (then it was "
            "never pushed from the machine that recorded it: run `dvc push` there)\n"
            f"{exc}"
        ) from None
    return workdir / ".dvc" / "cache"


def _object(stores: list[Path], md5: str) -> Path | None:
    for store in stores:
        candidate = store / "files" / "md5" / md5[:2] / md5[2:]
        if candidate.is_file():
            return candidate
    return None


def restore_data_version(md5: str, target: Path, stores: list[Path] | None = None) -> list[Path]:
    """Write the data/ folder of DVC version `md5` into `target` (which must not exist),
    reading its manifest and files from `stores`; by default the repository's DVC cache, or
    when it lacks the version, a cache that DVC pulls it into from the profile's remote
    (local folder or bucket). Every file's md5 is checked. Raises DataVersionNotFound,
    naming what is missing and where it looked."""
    if stores is None:
        stores = object_stores()
        if _object(stores, md5 + ".dir") is None:
            fetched = fetch_data_version(md5, target.with_name(target.name + ".dvc-fetch"))
            try:
                return restore_data_version(md5, target, [fetched])
            finally:
                shutil.rmtree(fetched.parent.parent, ignore_errors=True)
    where = " or ".join(str(s) for s in stores)
    manifest = _object(stores, md5 + ".dir")
    if manifest is None:
        raise DataVersionNotFound(
            f"data version {md5} is not in the DVC cache or remote ({where}): it was never "
            "pushed from the machine that recorded it, or the cache was cleared; run `dvc push` "
            "there (or `dvc pull` here from a remote that has it) and try again"
        )
    if target.exists():
        raise DataVersionError(f"{target} already exists; restoring needs an empty place")
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    written = []
    try:
        entries = json.loads(manifest.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DataVersionError(
            f"data version {md5}: its manifest {manifest} is damaged (not the JSON DVC wrote); "
            "delete it and `dvc pull` (or `dvc push` from a machine with a good copy)"
        ) from None
    for entry in entries:
        source = _object(stores, entry["md5"])
        if source is None:
            raise DataVersionNotFound(
                f"data version {md5}: file {entry['relpath']} (md5 {entry['md5']}) is not in "
                f"the DVC cache or remote ({where})"
            )
        destination = staging / entry["relpath"]
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
        if _file_md5(destination) != entry["md5"]:
            raise DataVersionError(f"{source}: content does not match its md5 {entry['md5']}")
        written.append(target / entry["relpath"])
    if directory_md5(staging) != md5:
        raise DataVersionError(f"restored files of data version {md5} do not hash to {md5}")
    staging.rename(target)
    return written
