"""Two training processes on a CPU, for real: `rung run` of address-ddp-tiny
(train.distributed: accelerate, 2 processes) beside the same recipe with one process, in a
scratch state. The trainer's own log and the MLflow run must show a real 2-rank run: world
size 2 and the total batch doubled (Axolotl's config as its log prints it), an epoch in
half the optimizer steps (the epoch MLflow records per step: the ranks share out the rows,
which unsynchronised copies would not do), metrics logged once per step, and one adapter.
Neither accelerate's "Num processes" nor transformers' "Total train batch size" line
reaches the log (Axolotl logs neither; transformers logs at warning level), hence the
config and the epochs.

Slow (two whole runs of the graph, a few minutes on 2 cores): marked e2e.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
from mlflow import MlflowClient

from pipelines import paths
from pipelines.lib import tracking

pytestmark = pytest.mark.e2e

FIXTURE = Path(__file__).parent / "fixtures" / "recipes" / "address-ddp-tiny.yaml"
DDP, SINGLE = "address-ddp-tiny", "address-ddp-tiny-single"
DISTRIBUTED_LINE = "  distributed: {launcher: accelerate, processes: 2}\n"
RUNG = Path(sys.executable).with_name("rung")


@dataclass
class Run:
    wall_s: float
    folder: Path  # runs/<recipe>/<dagster run id>/training_run
    log: str
    mlflow_run_id: str
    losses: list  # MLflow metric history of "loss"
    epochs: list  # ... and of "epoch"
    train_runtime: float
    load: tuple[float, float]  # the machine's 1-minute load average before and after


def _config_values(log: str, key: str) -> set[int]:
    """Every value of `key` in the Axolotl config the log prints (once per rank that
    prints it)."""
    return {int(v) for v in re.findall(rf'^\s*"{key}": (\d+),?$', log, flags=re.M)}


def _steps_per_epoch(epochs: list) -> int:
    """Optimizer steps in one epoch, from the epoch the trainer logs at the first step."""
    first = min(epochs, key=lambda m: m.step)
    return round(first.step / first.value)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Run]:
    root = tmp_path_factory.mktemp("distributed")
    recipes, state = root / "recipes", root / "state"
    recipes.mkdir()
    text = FIXTURE.read_text()
    assert DISTRIBUTED_LINE in text
    (recipes / f"{DDP}.yaml").write_text(text)
    (recipes / f"{SINGLE}.yaml").write_text(text.replace(DISTRIBUTED_LINE, ""))
    scratch = {"RUNG_STATE_DIR": str(state), "RUNG_RECIPES_DIR": str(recipes)}
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"} | scratch
    walls, loads = {}, {}
    for recipe_id in (SINGLE, DDP):
        start, load_before = time.monotonic(), os.getloadavg()[0]
        done = subprocess.run(
            [str(RUNG), "run", str(recipes / f"{recipe_id}.yaml")],
            env=env,
            cwd=paths.REPO_ROOT,
            capture_output=True,
            text=True,
        )
        walls[recipe_id] = time.monotonic() - start
        loads[recipe_id] = (load_before, os.getloadavg()[0])
        assert done.returncode == 0, f"rung run {recipe_id} failed:\n" + (
            done.stdout[-4000:] + done.stderr[-4000:]
        )
    out = {}
    with mock.patch.dict(os.environ, scratch):  # the scratch store, not this session's
        client = MlflowClient(tracking_uri=paths.mlflow_tracking_uri())
        experiment = client.get_experiment_by_name(tracking.EXPERIMENT)
        for recipe_id in (SINGLE, DDP):
            (folder,) = (state / "runs" / recipe_id).glob("*/training_run")
            (run,) = client.search_runs(
                [experiment.experiment_id],
                f"tags.`rung.recipe_id` = '{recipe_id}'",
            )
            run_id = run.info.run_id
            out[recipe_id] = Run(
                wall_s=walls[recipe_id],
                folder=folder,
                log=(folder / "train.log").read_text(errors="replace"),
                mlflow_run_id=run_id,
                losses=client.get_metric_history(run_id, "loss"),
                epochs=client.get_metric_history(run_id, "epoch"),
                train_runtime=run.data.metrics["train_runtime"],
                load=loads[recipe_id],
            )
    return out


def test_two_processes_were_launched_through_accelerate_on_the_cpu(runs):
    command = json.loads((runs[DDP].folder / "launch.json").read_text())
    assert command["argv"][3:5] == ["--launcher", "accelerate"]
    assert "--multi_gpu" in command["argv"] and "--cpu" not in command["argv"]
    assert command["env"]["ACCELERATE_USE_CPU"] == "true"
    single = json.loads((runs[SINGLE].folder / "launch.json").read_text())
    assert single["argv"][3:5] == ["--launcher", "python"]


def test_the_trainer_ran_with_world_size_two_and_a_doubled_batch(runs):
    ddp, single = runs[DDP].log, runs[SINGLE].log
    assert _config_values(ddp, "world_size") == {2}
    assert _config_values(single, "world_size") == {1}
    # batch_size is Axolotl's total batch: micro batch x accumulation x world size
    assert _config_values(ddp, "batch_size") == {4}
    assert _config_values(single, "batch_size") == {2}


def test_the_ranks_share_the_data_an_epoch_takes_half_the_steps(runs):
    single = _steps_per_epoch(runs[SINGLE].epochs)
    ddp = _steps_per_epoch(runs[DDP].epochs)
    # Unsynchronised copies would each see every row: the same steps per epoch as one.
    assert ddp == math.ceil(single / 2), (single, ddp)


def test_metrics_are_logged_once_per_step_by_rank_zero(runs):
    for run in runs.values():
        assert [m.step for m in run.losses] == [1, 2, 3, 4]  # max_steps, no duplicates
    # Rank 1 prints no loss line: the worker forwards each step to Dagster once.
    assert len(re.findall(r"\{'loss': ", runs[DDP].log)) == 4


def test_one_adapter_is_saved(runs):
    run = runs[DDP]
    adapters = sorted(run.folder.rglob("adapter_model.safetensors"))
    assert adapters == [run.folder / "out" / "adapter_model.safetensors"]
    assert not list(run.folder.rglob("checkpoint-*"))


def test_report_step_times(runs, record_property):
    """Not an assertion about speed: the numbers for docs/benchmarks.md (with the machine's
    load, since anything else running skews them)."""
    for recipe_id, run in runs.items():
        steps = len(run.losses)
        stamps = [m.timestamp for m in sorted(run.losses, key=lambda m: m.step)]
        steady = (stamps[-1] - stamps[0]) / 1000 / (steps - 1)  # after the first step
        line = (
            f"{recipe_id}: wall {run.wall_s:.0f} s, train_runtime {run.train_runtime:.1f} s "
            f"for {steps} steps ({run.train_runtime / steps:.1f} s/step, "
            f"{steady:.1f} s/step after the first); load average {run.load[0]:.1f} before, "
            f"{run.load[1]:.1f} after"
        )
        record_property(recipe_id, line)
        print(line)
