"""A training killed with SIGKILL mid-run: failed and unregistered, then resumed.

The fixture recipe `address-killed` trains 24 real steps with a checkpoint every 4. A
watcher kills the trainer's processes (SIGKILL: no handler runs, like a lost machine)
once a checkpoint is on disk. Then:

- the Dagster run fails at training_run, its MLflow run is FAILED, nothing registered;
- a run with changed inputs (another learning rate) does not resume the killed
  training: it says so and trains from scratch;
- a run with the killed run's inputs resumes from its last checkpoint (MLflow tags
  `rung.resumed_from_step`, `rung.resumes_mlflow_run`; no loss logged before that step),
  trains to the end, and leaves no checkpoint or attempt behind.

Real components throughout: the Dagster job in process, Axolotl in the trainer env
through Dagster Pipes, the MLflow store, the asset cache.
"""

from __future__ import annotations

import os
import re
import signal
import threading
from pathlib import Path

import pytest

RECIPE = "address-killed"
UP_TO_TRAINING = ["base_model", "raw_data", "cleaned_data", "split", "training_set", "training_run"]


def _trainer_pids(marker: str) -> list[int]:
    """Processes whose command line names `marker` (the run's Axolotl config)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in command and "axolotl" in command:
            pids.append(int(proc.name))
    return pids


def _kill_at_first_checkpoint(runs: Path, killed: dict, done: threading.Event) -> None:
    from pipelines.lib.checkpoints import last_checkpoint, step_of

    while not done.is_set():  # until the run ends (the data stages come first)
        for out in runs.glob(f"{RECIPE}/*/training_run/out"):
            checkpoint = last_checkpoint(out)
            pids = _trainer_pids(str(out.parent / "axolotl.yml")) if checkpoint else []
            if pids:
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
                killed.update(step=step_of(checkpoint), pids=pids)
                return
        done.wait(0.1)


def _messages(run_id: str) -> str:
    import dagster as dg

    return "\n".join(e.user_message for e in dg.DagsterInstance.get().all_logs(run_id))


@pytest.mark.e2e
def test_a_killed_training_fails_cleanly_and_the_next_run_resumes_from_its_checkpoint(
    record_property,
):
    from pipelines import paths
    from pipelines.launch import run_recipe
    from pipelines.lib import tracking
    from pipelines.recipe import load_recipe, recipe_path

    recipe = load_recipe(recipe_path(RECIPE))
    killed: dict = {}
    done = threading.Event()
    watcher = threading.Thread(
        target=_kill_at_first_checkpoint, args=(paths.runs_dir(), killed, done)
    )
    watcher.start()
    try:
        first = run_recipe(recipe)
    finally:
        done.set()
        watcher.join()

    # (a) the kill is a failed run naming the training; its MLflow run is FAILED
    assert killed, "no checkpoint appeared to kill the training at"
    assert not first.success and first.failure.startswith(
        f"training_run: training failed for recipe {RECIPE}"
    )
    killed_run = re.search(r"MLflow run (\w+) marked FAILED", first.failure)[1]
    client = tracking.configure_mlflow()
    assert client.get_run(killed_run).info.status == "FAILED"
    # (b) nothing downstream, nothing registered, nothing cached for training_run
    assert {"training_run", "evaluation", "registered_adapter"}.isdisjoint(first.outputs)
    versions = client.search_model_versions(f"run_id = '{killed_run}'")
    record_property("versions_wrongly_registered", len(versions))
    assert versions == []
    assert not list((paths.asset_cache_dir() / RECIPE / "training_run").glob("*.json"))

    # (c1) changed inputs: the killed training is not resumed, and the run says why
    text = recipe.path.read_text()
    recipe.path.write_text(text.replace("learning_rate: 0.0005", "learning_rate: 0.0004"))
    try:
        changed = run_recipe(load_recipe(recipe.path), assets=UP_TO_TRAINING)
    finally:
        recipe.path.write_text(text)
    assert changed.success, changed.failure
    said = _messages(changed.dagster_run_id)
    assert "not resuming the unfinished training of Dagster run " + first.dagster_run_id in said
    assert f"stopped after step {killed['step']}" in said and "its inputs differ" in said
    fresh = client.get_run(changed.outputs["training_run"].mlflow_run_id)
    assert "rung.resumed_from_step" not in fresh.data.tags
    assert min(m.step for m in client.get_metric_history(fresh.info.run_id, "loss")) <= 1

    # (c2) the same inputs again: resumed from the killed run's last checkpoint
    resumed = run_recipe(load_recipe(recipe.path), assets=UP_TO_TRAINING)
    assert resumed.success, resumed.failure
    said = _messages(resumed.dagster_run_id)
    assert f"resuming the training that Dagster run {first.dagster_run_id} left" in said
    trained = resumed.outputs["training_run"]
    run = client.get_run(trained.mlflow_run_id)
    step = int(run.data.tags["rung.resumed_from_step"])
    assert step >= killed["step"] and run.data.tags["rung.resumes_mlflow_run"] == killed_run
    losses = client.get_metric_history(run.info.run_id, "loss")
    assert min(m.step for m in losses) > step  # the steps before the checkpoint were not redone
    assert trained.steps == recipe.spec.train.max_steps and run.info.status == "FINISHED"
    assert (Path(trained.adapter_dir) / "adapter_model.safetensors").is_file()
    # checkpoints are only for resuming: none left, of either attempt, and no attempt record
    assert not list(paths.runs_dir().glob(f"{RECIPE}/*/training_run/out/checkpoint-*"))
    assert not list((paths.asset_cache_dir() / RECIPE / "training_attempts").glob("*.json"))
