"""Registry, aliases, caching, serving and reproduction on the shared tiny run (real stack).

`tiny_run` (tests/conftest.py) trains address-tiny once per session; these tests
re-run it (no-op), load and serve what it registered, run a rival that must not
ship, and reproduce it from its MLflow record. Slow: they load real models.
"""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import dagster as dg
import mlflow
import pandas as pd
import pytest

from pipelines import paths
from pipelines.launch import run_recipe
from pipelines.lib import aliases, data_version, tracking
from pipelines.lib.comparison import comparison_rows
from pipelines.lib.reproduction import format_comparison
from pipelines.recipe import load_recipe, recipe_path
from pipelines.reproduce import reproduce

pytestmark = pytest.mark.e2e

NAME = "address-tiny"  # the registered model: register.name defaults to the recipe id
QUESTION = {
    "messages": [
        {"role": "system", "content": "Extract the address fields as a JSON object."},
        {"role": "user", "content": "9 Oak Ave, Springfield, IL 62704"},
    ]
}
PREDICT = """
import json, sys, mlflow
model = mlflow.pyfunc.load_model(sys.argv[1])
print(json.dumps(model.predict(json.loads(sys.argv[2]), params={"max_new_tokens": 48})))
"""
CACHED_ASSETS = ("cleaned_data", "split", "training_run", "evaluation")


def _versions(client) -> list:
    return client.search_model_versions(f"name = '{NAME}'")


def test_a_ship_verdict_registers_a_version_with_lineage_and_aliases(tiny_run):
    recipe, outcome = tiny_run
    registered = outcome.outputs["registered_adapter"]
    assert registered.created and registered.model_uri == f"models:/{NAME}/1"
    assert registered.aliases == ["challenger", "champion"]  # the first to pass the gate

    client = tracking.configure_mlflow()
    version = client.get_model_version(NAME, "1")
    run_tags = client.get_run(outcome.outputs["training_run"].mlflow_run_id).data.tags
    tags, report = version.tags, outcome.outputs["evaluation"].report
    assert version.run_id == outcome.outputs["training_run"].mlflow_run_id
    assert tags["rung.data_dvc_md5"] == data_version.recorded_md5()
    assert tags["rung.recipe_sha256"] == recipe.sha256
    assert tags["rung.git_commit"] == run_tags["rung.git_commit"]
    assert tags["rung.base_model"] == "smollm2-135m-instruct"
    assert tags["rung.base_model_sha256"] == outcome.outputs["base_model"].sha256
    assert tags["rung.verdict"] == "SHIP" and tags["rung.primary_metric"] == "field_f1"
    assert float(tags["rung.metric.field_f1"]) == pytest.approx(
        report["candidates"]["tuned"]["field_f1"], abs=1e-6
    )
    assert float(tags["rung.interval_low"]) == pytest.approx(report["interval"]["low"], abs=1e-6)
    assert tags["rung.dagster_run_id"] == outcome.dagster_run_id
    for package in ("torch", "transformers", "peft", "orchestrator.mlflow"):
        assert tags[f"rung.version.{package}"][0].isdigit(), package

    local = mlflow.artifacts.download_artifacts(f"models:/{NAME}/1")
    files = {os.path.relpath(os.path.join(d, f), local) for d, _, fs in os.walk(local) for f in fs}
    adapter = {f for f in files if f.startswith("artifacts/adapter/")}
    assert adapter == {
        "artifacts/adapter/adapter_model.safetensors",
        "artifacts/adapter/adapter_config.json",
    }  # safetensors only
    assert {
        "artifacts/data_card/data_card.md",
        "artifacts/evaluation/report.md",
        "artifacts/evaluation/report.json",
        "artifacts/base_model.json",
        "chat_model.py",
        "MLmodel",
    } <= files
    pointer = json.loads(Path(local, "artifacts", "base_model.json").read_text())
    assert pointer["sha256"] == outcome.outputs["base_model"].sha256
    moves = aliases.alias_history(NAME)
    assert [(m.alias, m.version, m.previous) for m in moves] == [
        ("challenger", "1", None),
        ("champion", "1", None),
    ]
    assert all(m.dagster_run_id == outcome.dagster_run_id for m in moves)


def test_the_champion_loads_by_alias_and_answers_chat_messages(tiny_run):
    done = subprocess.run(
        [
            str(paths.TRAINER_PYTHON),
            "-c",
            PREDICT,
            f"models:/{NAME}@champion",
            json.dumps(QUESTION),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": paths.mlflow_tracking_uri()},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (answer,) = json.loads(done.stdout.strip().splitlines()[-1])
    assert isinstance(answer, str) and answer.strip()


def test_a_noop_rerun_recomputes_nothing_and_registers_no_second_version(tiny_run):
    recipe, first = tiny_run
    started = time.monotonic()
    again = run_recipe(recipe)
    seconds = time.monotonic() - started
    assert again.success
    instance = dg.DagsterInstance.get()
    events = instance.all_logs(
        again.dagster_run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    )
    cache = {
        e.dagster_event.asset_key.path[
            -1
        ]: e.dagster_event.event_specific_data.materialization.metadata.get("cache")
        for e in events
    }
    for name in CACHED_ASSETS:
        assert cache[name].value == "reused", name
    assert not (paths.runs_dir() / recipe.id / again.dagster_run_id / "training_run").exists()
    assert again.outputs["training_run"].mlflow_run_id == (
        first.outputs["training_run"].mlflow_run_id
    )
    registered = again.outputs["registered_adapter"]
    assert not registered.created and registered.version == "1"
    assert len(_versions(tracking.configure_mlflow())) == 1
    assert seconds < 120, f"a no-op re-run took {seconds:.0f} s"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_served_champion_answers_a_chat_request(tiny_run):
    port = _free_port()
    server = subprocess.Popen(
        [
            str(paths.REPO_ROOT / ".venv" / "bin" / "rung"),
            "serve",
            f"models:/{NAME}@champion",
            "--port",
            str(port),
        ],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, "the model server exited"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, "the model server did not start in 5 min"
                time.sleep(3)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({**QUESTION, "max_new_tokens": 32}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=600) as response:
            answers = json.loads(response.read())
        assert isinstance(answers, list) and isinstance(answers[0], str) and answers[0].strip()
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)


def test_the_champion_answers_a_rivals_heldout_rows_and_keeps_its_alias(tiny_run):
    outcome = run_recipe(load_recipe(recipe_path("address-tiny-rival")))
    assert outcome.verdict == "NO-SHIP" and "registered_adapter" not in outcome.outputs
    evaluation = outcome.outputs["evaluation"]
    assert evaluation.champion["version"] == "1"
    assert 0.0 <= evaluation.champion["score"] <= 1.0
    # the champion really answered the rival's held-out rows, the same rows as the tune
    predictions = pd.read_parquet(Path(evaluation.predictions_file))
    heldout = predictions[predictions["set"] == "heldout"]
    asked = heldout.groupby("candidate")["id"].apply(frozenset)
    assert asked["champion"] == asked["tuned"] and len(asked["champion"]) > 0
    client = tracking.configure_mlflow()
    assert len(_versions(client)) == 1
    assert client.get_model_version_by_alias(NAME, "champion").version in ("1", 1)
    assert len(aliases.alias_history(NAME)) == 2  # nothing moved


def test_reproduce_gives_the_same_split_hashes_and_metrics(tiny_run):
    recipe, outcome = tiny_run
    original = outcome.outputs["training_run"].mlflow_run_id
    done = reproduce(f"models:/{NAME}@champion")
    print(format_comparison(done.comparison))
    assert done.original_run_id == original and done.reproduced_run_id not in (None, original)
    assert done.comparison.hashes_equal
    compared = {name for name, _, _, ok in done.comparison.metrics if ok is not None}
    assert {"tuned.field_f1", "baseline.field_f1", "tuned.heldout_loss", "loss"} <= compared
    assert done.comparison.metrics_within_tolerance
    client = tracking.configure_mlflow()
    assert client.get_run(done.reproduced_run_id).data.tags["rung.reproduces"] == original
    assert len(_versions(client)) == 1  # a reproduction registers nothing
    assert data_version.workspace_matches_dvc()  # data/ and data.dvc untouched
    (row,) = comparison_rows([recipe.id])  # compare shows the original, not the reproduction
    assert row["mlflow run"] == original and row["verdict"] == "SHIP"
    assert row["data md5"] == data_version.recorded_md5()[:12]
