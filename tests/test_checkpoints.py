"""Which checkpoint a killed training resumes from (lib/checkpoints.py), on folders laid
out as Axolotl writes them. The real kill and resume: tests/faults/test_fault_training_killed.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.lib import checkpoints


@pytest.fixture(autouse=True)
def own_state(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNG_STATE_DIR", str(tmp_path / "state"))


def _checkpoint(out: Path, step: int, complete: bool = True) -> Path:
    folder = out / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    names = checkpoints.CHECKPOINT_FILES if complete else checkpoints.CHECKPOINT_FILES[:1]
    for name in names:
        (folder / name).write_text("x")
    return folder


def test_the_newest_complete_checkpoint_is_chosen(tmp_path):
    out = tmp_path / "out"
    assert checkpoints.last_checkpoint(out) is None
    _checkpoint(out, 4)
    eight = _checkpoint(out, 8)
    _checkpoint(out, 12, complete=False)  # killed in the middle of its save
    (out / "checkpoint-final").mkdir()
    assert checkpoints.last_checkpoint(out) == eight


def test_the_same_key_resumes_and_another_key_says_why_it_does_not(tmp_path):
    killed = tmp_path / "run1" / "out"
    _checkpoint(killed, 4)
    checkpoints.record_attempt("r", "key-a", killed, "mlflow-1", "dagster-1")

    attempt, checkpoint, notes = checkpoints.resume_point("r", "key-a")
    assert attempt.dagster_run_id == "dagster-1" and checkpoint == killed / "checkpoint-4"
    assert notes == []

    attempt, checkpoint, notes = checkpoints.resume_point("r", "key-b")
    assert (attempt, checkpoint) == (None, None)
    (note,) = notes
    assert "not resuming the unfinished training of Dagster run dagster-1" in note
    assert "stopped after step 4" in note and "key-a vs key-b" in note


def test_an_attempt_killed_before_its_first_save_resumes_from_where_it_started(tmp_path):
    first, second = tmp_path / "run1" / "out", tmp_path / "run2" / "out"
    start = _checkpoint(first, 4)
    checkpoints.record_attempt("r", "key-a", first, "mlflow-1", "dagster-1")
    (killed,) = checkpoints.unfinished("r")
    second.mkdir(parents=True)  # resumed from step 4, killed again before step 8
    checkpoints.record_attempt("r", "key-a", second, "mlflow-2", "dagster-2", killed, start)
    attempt, checkpoint, _ = checkpoints.resume_point("r", "key-a")
    assert attempt.dagster_run_id == "dagster-2" and checkpoint == start
    assert attempt.folders == (str(first), str(second))


def test_a_finished_training_deletes_its_keys_chain_and_keeps_other_keys(tmp_path):
    chain = [tmp_path / f"run{i}" / "out" for i in range(3)]
    _checkpoint(chain[0], 4)
    checkpoints.record_attempt("r", "key-a", chain[0], "m0", "d0")
    (first,) = checkpoints.unfinished("r")
    _checkpoint(chain[1], 8)  # resumed, killed again after its own save
    checkpoints.record_attempt("r", "key-a", chain[1], "m1", "d1", first, chain[0] / "checkpoint-4")
    other = tmp_path / "other" / "out"
    _checkpoint(other, 4)
    checkpoints.record_attempt("r", "key-b", other, "m2", "d2")  # another key's leftover
    _checkpoint(chain[2], 12)  # the run that finishes
    checkpoints.finish("r", "key-a", chain[2])
    assert not [p for p in chain if list(p.glob("checkpoint-*"))]
    assert [a.key for a in checkpoints.unfinished("r")] == ["key-b"]
    assert list(other.glob("checkpoint-*"))  # resumable if key-b's inputs come back


def test_a_forgotten_attempt_is_never_resumed(tmp_path):
    out = tmp_path / "run1" / "out"
    _checkpoint(out, 4)
    checkpoints.record_attempt("r", "key-a", out, "mlflow-1", "dagster-1")
    checkpoints.forget("r", "key-a")
    assert checkpoints.resume_point("r", "key-a") == (None, None, [])
    assert not list(out.glob("checkpoint-*"))


def test_an_attempt_without_a_complete_checkpoint_trains_from_scratch_saying_so(tmp_path):
    out = tmp_path / "run1" / "out"
    _checkpoint(out, 4, complete=False)
    checkpoints.record_attempt("r", "key-a", out, "mlflow-1", "dagster-1")
    attempt, checkpoint, notes = checkpoints.resume_point("r", "key-a")
    assert attempt is not None and checkpoint is None
    assert "saved no complete checkpoint; training from scratch" in notes[0]
