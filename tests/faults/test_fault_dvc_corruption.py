"""A corrupted object in the DVC cache or remote: a restore refuses it, naming the file and
its md5, and never leaves a workspace holding the corrupt bytes. Built on a real DVC
repository and remote in tmp_path (as tests/test_data_version.py builds one)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines import paths
from pipelines.lib import data_version
from pipelines.lib.data_version import DataVersionError

DVC = str(Path(sys.executable).with_name("dvc"))
ROWS = '{"a": 1}\n{"a": 2}\n{"a": 3}\n'


def dvc(repo: Path, *args: str) -> str:
    return subprocess.run(
        [DVC, *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "DVC_NO_ANALYTICS": "1"},
    ).stdout


@pytest.fixture(scope="module")
def _pristine(tmp_path_factory) -> tuple[Path, Path, str]:
    root = tmp_path_factory.mktemp("dvc-fault")
    repo, remote = root / "repo", root / "remote"
    (repo / "data" / "task").mkdir(parents=True)
    (repo / "data" / "task" / "rows.jsonl").write_text(ROWS)
    (repo / "data" / "README.txt").write_text("version one\n")
    dvc(repo, "init", "--no-scm", "-q")
    dvc(repo, "config", "core.analytics", "false")
    dvc(repo, "remote", "add", "-d", "local", str(remote))
    dvc(repo, "add", "-q", "data")
    dvc(repo, "push", "-q")
    md5 = yaml.safe_load((repo / "data.dvc").read_text())["outs"][0]["md5"].removesuffix(".dir")
    return repo, remote, md5


@pytest.fixture
def store(_pristine, tmp_path) -> tuple[Path, Path, str]:
    """A copy of the repository (with its cache) and the remote: each test damages its own."""
    repo, remote, md5 = _pristine
    shutil.copytree(repo, tmp_path / "repo", symlinks=True)
    shutil.copytree(remote, tmp_path / "remote")
    dvc(tmp_path / "repo", "remote", "modify", "local", "url", str(tmp_path / "remote"))
    return tmp_path / "repo", tmp_path / "remote", md5


def rows_file_md5(store_dir: Path, md5: str) -> str:
    manifest = store_dir / "files" / "md5" / md5[:2] / (md5[2:] + ".dir")
    entries = json.loads(manifest.read_text())
    return next(e["md5"] for e in entries if e["relpath"] == "task/rows.jsonl")


def object_path(store_dir: Path, md5: str) -> Path:
    return store_dir / "files" / "md5" / md5[:2] / md5[2:]


def damage(file: Path, how: str) -> None:
    file.chmod(0o644)  # DVC keeps its objects read-only
    if how == "altered":  # one row changed, same length: a silent bit flip
        file.write_text(ROWS.replace('"a": 2', '"a": 7'))
    else:  # a partial download or a full disk
        file.write_bytes(file.read_bytes()[:5])


@pytest.mark.parametrize("how", ["altered", "truncated"])
@pytest.mark.parametrize("where", ["cache", "remote"])
def test_a_corrupted_object_is_refused_naming_the_file_and_its_md5(
    store, tmp_path, where, how, record_property
):
    repo, remote, md5 = store
    cache = repo / ".dvc" / "cache"
    file_md5 = rows_file_md5(cache, md5)
    if where == "remote":  # the cache lost it: the remote's copy is the only one
        shutil.rmtree(cache)
        stores = [cache, remote]
        bad = object_path(remote, file_md5)
    else:
        stores = [cache]
        bad = object_path(cache, file_md5)
    damage(bad, how)
    target = tmp_path / "restored" / "data"
    with pytest.raises(DataVersionError) as refused:
        data_version.restore_data_version(md5, target, stores)
    message = str(refused.value)
    assert file_md5 in message and str(bad) in message  # (a) names the object and its md5
    # (b) nothing half-restored where the recipes read data; the workspace is untouched
    assert not target.exists()
    workspace_rows = (repo / "data" / "task" / "rows.jsonl").read_text().splitlines()
    record_property("rows_lost", len(ROWS.splitlines()) - len(set(workspace_rows)))
    assert workspace_rows == ROWS.splitlines()
    # (c) the repair, then the restore succeeds: the cache's bad object dropped (the remote
    # serves it), or the remote's re-pushed from the workspace. `dvc push` skips a folder
    # whose .dir manifest the remote has, so that manifest goes too (docs/guarantees.md).
    bad.unlink()
    if where == "remote":
        object_path(remote, md5 + ".dir").unlink()
        dvc(repo, "add", "-q", "data")
        dvc(repo, "push", "-q")
        stores = [remote]
    else:
        stores = [cache, remote]
    data_version.restore_data_version(md5, target, stores)
    assert data_version.directory_md5(target) == md5
    assert (target / "task" / "rows.jsonl").read_text() == ROWS


def test_a_tampered_manifest_is_refused_by_the_version_hash(store, tmp_path):
    repo, _, md5 = store
    cache = repo / ".dvc" / "cache"
    manifest = object_path(cache, md5 + ".dir")
    entries = json.loads(manifest.read_text())
    manifest.chmod(0o644)
    manifest.write_text(json.dumps([e for e in entries if e["relpath"] != "README.txt"]))
    target = tmp_path / "restored" / "data"
    with pytest.raises(DataVersionError, match=f"do not hash to {md5}"):
        data_version.restore_data_version(md5, target, [cache])
    assert not target.exists()


def test_a_truncated_manifest_is_refused_naming_it(store, tmp_path):
    repo, _, md5 = store
    cache = repo / ".dvc" / "cache"
    manifest = object_path(cache, md5 + ".dir")
    damage(manifest, "truncated")
    with pytest.raises(DataVersionError, match=md5):
        data_version.restore_data_version(md5, tmp_path / "restored" / "data", [cache])


@pytest.fixture
def as_repo(store, monkeypatch):
    """data_version's workspace functions pointed at the temporary DVC repository."""
    repo = store[0]
    monkeypatch.setattr(paths, "REPO_ROOT", repo)
    monkeypatch.setattr(paths, "DATA_DVC_FILE", repo / "data.dvc")
    monkeypatch.setattr(paths, "DATA_DIR", repo / "data")
    monkeypatch.delenv("RUNG_DATA_ROOT", raising=False)
    return store


def test_a_workspace_checked_out_from_a_corrupted_cache_is_never_taken_for_the_version(as_repo):
    repo, _, md5 = as_repo
    cache = repo / ".dvc" / "cache"
    damage(object_path(cache, rows_file_md5(cache, md5)), "altered")
    shutil.rmtree(repo / "data")
    dvc(repo, "checkout", "-q")  # DVC restores the corrupt bytes without a word
    assert (repo / "data" / "task" / "rows.jsonl").read_text() != ROWS
    # what `make data` / `rung data` does: restore the recorded version (dvc pull)
    restored = data_version.restore_recorded_version()
    rows = (repo / "data" / "task" / "rows.jsonl").read_text()
    # either it refused, or what it restored is the real version
    assert not restored or rows == ROWS
    # and the raw_data stage never reads corrupt rows as the recorded version
    if rows != ROWS:
        with pytest.raises(DataVersionError, match="differs"):
            data_version.current_data_version()
