"""Fault: the MLflow store is locked by another writer.

A second process holds an exclusive lock on the SQLite store (what a stuck writer, a
backup tool or another rung process mid-transaction does). MLflow itself waits 20 s
for the lock, then gives up; rung retries with doubling waits for RUNG_MLFLOW_RETRY_S:
with a budget shorter than the lock the write fails with an error naming the store
and the cause, and nothing is half-written; with a budget longer than the lock every
metric lands once the lock is gone.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from pipelines import paths
from pipelines.lib import tracking

HOLD_S = 40  # longer than MLflow's own 20 s busy timeout


@pytest.fixture
def own_store(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNG_STATE_DIR", str(tmp_path / "state"))
    yield
    monkeypatch.undo()
    tracking.configure_mlflow()  # back to the session's store


def _lock_store(seconds: float) -> subprocess.Popen:
    """Another process holding an exclusive lock on the store for `seconds`."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "db.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "time.sleep(float(sys.argv[2]))\n"
            "db.execute('COMMIT')\n",
            str(paths.mlruns_dir() / "mlflow.db"),
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_locked_store_fails_clearly_within_its_budget_then_a_later_write_lands(
    own_store, monkeypatch, record_property
):
    run_id = tracking.start_run("locked", "dagster-locked", {})
    client = tracking.configure_mlflow()
    holder = _lock_store(HOLD_S)
    locked_at = time.monotonic()
    try:
        monkeypatch.setenv(tracking.RETRY_ENV, "1")  # less than the lock: give up
        started = time.monotonic()
        with pytest.raises(tracking.TrackingUnavailable) as failed:
            tracking.log_metrics(client, run_id, {"first": 1.0})
        message = str(failed.value)
        assert "mlflow.db" in message and "log_batch" in message
        assert "database is locked" in message and tracking.RETRY_ENV in message
        assert time.monotonic() - started < HOLD_S  # bounded: it did not wait for the lock

        monkeypatch.setenv(tracking.RETRY_ENV, "120")  # more than the lock: wait it out
        metrics = {f"m{i}": float(i) for i in range(50)}
        tracking.log_metrics(client, run_id, metrics)
        assert time.monotonic() - locked_at >= HOLD_S - 1  # it landed once the lock was gone
    finally:
        holder.kill()
        holder.wait()
    logged = client.get_run(run_id).data.metrics
    assert "first" not in logged  # the failed write left nothing behind
    assert {k: v for k, v in logged.items() if k.startswith("m")} == metrics  # none dropped
    record_property("rows_lost", 0)


def test_only_transient_store_errors_are_retried(monkeypatch):
    monkeypatch.setenv(tracking.RETRY_ENV, "5")
    calls = []

    def refused() -> None:
        calls.append(time.monotonic())
        raise ValueError("INVALID_PARAMETER_VALUE: not a store problem")

    with pytest.raises(ValueError):
        tracking.with_retries(refused, "log_batch", "sqlite:///x.db")
    assert len(calls) == 1  # a real error is raised at once, not retried
    client = tracking.RetryingClient(object(), "http://user:s3cret@tracking.example:5000")
    assert "s3cret" not in client._store
