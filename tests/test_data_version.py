"""Data versions: DVC's directory md5, and restoring an old version from a real DVC cache."""

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
from pipelines.lib.data_version import DataVersionError, DataVersionNotFound

DVC = str(Path(sys.executable).with_name("dvc"))


def dvc(repo: Path, *args: str) -> None:
    subprocess.run(
        [DVC, *args],
        cwd=repo,
        check=True,
        capture_output=True,
        env={**os.environ, "DVC_NO_ANALYTICS": "1"},
    )


def recorded(repo: Path) -> str:
    return yaml.safe_load((repo / "data.dvc").read_text())["outs"][0]["md5"].removesuffix(".dir")


@pytest.fixture(scope="module")
def _pristine(tmp_path_factory):
    """A DVC repository whose data.dvc has moved on from version 1 to version 2."""
    tmp_path = tmp_path_factory.mktemp("dvc")
    repo, remote = tmp_path / "repo", tmp_path / "remote"
    (repo / "data" / "task").mkdir(parents=True)
    (repo / "data" / "task" / "rows.jsonl").write_text('{"a": 1}\n')
    (repo / "data" / "README.txt").write_text("version one\n")
    dvc(repo, "init", "--no-scm", "-q")
    dvc(repo, "config", "core.analytics", "false")
    dvc(repo, "remote", "add", "-d", "local", str(remote))
    dvc(repo, "add", "-q", "data")
    dvc(repo, "push", "-q")
    first = recorded(repo)
    (repo / "data" / "task" / "rows.jsonl").write_text('{"a": 1}\n{"a": 2}\n')
    dvc(repo, "add", "-q", "data")
    assert recorded(repo) != first
    return repo, remote, first


@pytest.fixture
def moved_on(_pristine, tmp_path):
    """A copy of the pristine repository and remote (tests may damage theirs)."""
    repo, remote, first = _pristine
    shutil.copytree(repo, tmp_path / "repo")
    shutil.copytree(remote, tmp_path / "remote")
    return tmp_path / "repo", tmp_path / "remote", first


def test_directory_md5_is_the_md5_dvc_records():
    assert data_version.directory_md5(paths.DATA_DIR) == data_version.recorded_md5()


def test_an_old_version_is_restored_from_the_cache_after_data_dvc_moved_on(moved_on, tmp_path):
    repo, _, first = moved_on
    written = data_version.restore_data_version(
        first, tmp_path / "restored" / "data", [repo / ".dvc" / "cache"]
    )
    restored = tmp_path / "restored" / "data"
    assert (restored / "task" / "rows.jsonl").read_text() == '{"a": 1}\n'
    assert data_version.directory_md5(restored) == first
    assert len(written) == 2
    assert (repo / "data" / "task" / "rows.jsonl").read_text().count("\n") == 2  # untouched


def test_the_remote_serves_a_version_the_cache_lost(moved_on, tmp_path):
    repo, remote, first = moved_on
    shutil.rmtree(repo / ".dvc" / "cache")
    data_version.restore_data_version(first, tmp_path / "data", [repo / ".dvc" / "cache", remote])
    assert data_version.directory_md5(tmp_path / "data") == first


def test_a_version_in_neither_place_is_refused_with_what_to_do(moved_on, tmp_path):
    repo, remote, _ = moved_on
    with pytest.raises(DataVersionNotFound, match=r"0{32} is not in the DVC cache or remote.*push"):
        data_version.restore_data_version(
            "0" * 32, tmp_path / "data", [repo / ".dvc/cache", remote]
        )
    assert not (tmp_path / "data").exists()


def test_a_corrupted_file_is_refused(moved_on, tmp_path):
    repo, remote, first = moved_on
    shutil.rmtree(repo / ".dvc" / "cache")
    manifest = remote / "files" / "md5" / first[:2] / (first[2:] + ".dir")
    entry = json.loads(manifest.read_text())[0]
    (remote / "files" / "md5" / entry["md5"][:2] / entry["md5"][2:]).write_text("tampered")
    with pytest.raises(DataVersionError, match="does not match its md5"):
        data_version.restore_data_version(first, tmp_path / "data", [remote])
    assert not (tmp_path / "data").exists()


def test_under_a_data_root_the_version_is_the_restored_folders_md5(moved_on, tmp_path, monkeypatch):
    repo, _, first = moved_on
    data_version.restore_data_version(first, tmp_path / "root" / "data", [repo / ".dvc/cache"])
    monkeypatch.setenv("RUNG_DATA_ROOT", str(tmp_path / "root"))
    assert data_version.current_data_version() == first
