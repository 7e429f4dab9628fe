"""Two launches of one recipe at once: the second is refused at once (never queued), naming
the recipe and the launch that holds it; the lock goes with its holder however that ends
(normal exit, exception, SIGKILL), and the next launch proceeds. No training: the only run
launched here materializes the base_model asset."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines import launch, paths
from pipelines.lib.run_lock import RecipeBusy, lock_file, recipe_lock
from pipelines.recipe import load_recipe, recipe_path

RECIPE = "address-tiny"
HOLD = """
import sys, time
from pipelines.lib.run_lock import recipe_lock
with recipe_lock(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    sys.stdin.readline()  # hold until the test closes our stdin (or kills us)
"""


@pytest.fixture(autouse=True)
def own_state(tmp_path, monkeypatch) -> None:
    """A state dir (locks, Dagster home, MLflow store) of this test's own; the holder
    process inherits it."""
    monkeypatch.setenv("RUNG_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "state" / ".dagster"))  # restored after


@pytest.fixture
def holder() -> Iterator[subprocess.Popen]:
    """Another process that holds the recipe's lock, as a running launch would."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, RECIPE, "dagster-run-elsewhere"],
        cwd=paths.REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "held"
    yield process
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)


def dagster_runs_of(recipe_id: str) -> set[str]:
    folder = paths.runs_dir() / recipe_id
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def registered_versions() -> int:
    """Versions of the recipe's model in this session's MLflow registry."""
    from pipelines.lib.tracking import configure_mlflow

    return len(configure_mlflow().search_model_versions(f"name = '{RECIPE}'"))


def test_a_second_launch_is_refused_naming_the_recipe_and_the_holder(holder, record_property):
    recipe = load_recipe(recipe_path(RECIPE))
    before, versions_before = dagster_runs_of(RECIPE), registered_versions()
    start = time.monotonic()
    with pytest.raises(RecipeBusy) as refused:
        launch.run_recipe(recipe)
    message = str(refused.value)
    assert f"recipe '{RECIPE}'" in message  # (a) the recipe...
    assert f"pid {holder.pid}" in message and "dagster-run-elsewhere" in message  # ...and holder
    assert time.monotonic() - start < 10  # refused, not queued behind the other launch
    # (b) the refused launch started nothing: no Dagster run folder, nothing registered
    started = dagster_runs_of(RECIPE) - before
    new_versions = registered_versions() - versions_before
    record_property("versions_wrongly_registered", len(started) + new_versions)
    assert not started and new_versions == 0
    # the holder ends normally: the lock is free again
    holder.stdin.close()
    assert holder.wait(timeout=30) == 0
    with recipe_lock(RECIPE, "next"):
        pass


def test_the_cli_refuses_a_second_launch_with_exit_2():
    """The other way round: this process holds the lock; `rung run` in another process."""
    env = dict(os.environ)  # this test's state dir, the session's recipes
    with recipe_lock(RECIPE, "dagster-run-in-test"):
        done = subprocess.run(
            [str(Path(sys.executable).with_name("rung")), "run", str(recipe_path(RECIPE))],
            cwd=paths.REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"recipe '{RECIPE}' is already being launched by pid {os.getpid()}" in done.stderr
    assert "dagster-run-in-test" in done.stderr and "Traceback" not in done.stderr


def test_a_holder_killed_with_sigkill_leaves_no_stale_lock(holder):
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    assert lock_file(RECIPE).exists()  # the file stays; the kernel dropped the lock with it
    with recipe_lock(RECIPE, "after-the-crash") as path:
        assert "after-the-crash" in path.read_text()


def test_the_lock_is_released_when_a_launch_raises(monkeypatch):
    def crash() -> Path:
        raise RuntimeError("the Dagster instance could not be opened")

    monkeypatch.setattr(launch, "ensure_dagster_home", crash)
    with pytest.raises(RuntimeError, match="could not be opened"):
        launch.run_recipe(load_recipe(recipe_path(RECIPE)))
    with recipe_lock(RECIPE, "next"):
        pass
    assert lock_file(RECIPE).read_text() == ""  # released: no holder named


def test_the_next_launch_after_a_refusal_runs(holder):
    """(c) Once the other launch is over, a launch of the recipe really runs (the base_model
    asset only: no training) and names its own run in the lock while it does."""
    recipe = load_recipe(recipe_path(RECIPE))
    with pytest.raises(RecipeBusy):
        launch.run_recipe(recipe, assets=["base_model"])
    holder.stdin.close()
    holder.wait(timeout=30)
    outcome = launch.run_recipe(recipe, assets=["base_model"])
    assert outcome.success, outcome.failure
    assert outcome.outputs["base_model"].sha256  # the asset materialized
    assert lock_file(RECIPE).read_text() == ""
