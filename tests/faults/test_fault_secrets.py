"""Secrets in the environment never reach what rung writes down.

A fake teacher API key (the variable `train.distill.api_key_env` names) and fake DVC/S3
credentials are planted in the environment; then the code paths that could leak them run
for real, without training: the data stages, the HTTP teacher against a local server that
fails (and echoes the Authorization header back, as some servers do), a Dagster run whose
step fails with the teacher's error, and the training stage up to a trainer that crashes
(the MLflow run with its lineage tags, the recipe's params, the recipe, Axolotl config and
data card artifacts, marked FAILED). Every MLflow param/tag/artifact, every Dagster event,
and every byte under the state dir (run folders, MLflow's and Dagster's databases) is then
searched for the planted values: zero hits.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipelines import paths

KEY_ENV = "RUNG_FAULT_TEACHER_KEY"
SECRETS = {
    KEY_ENV: "sk-fault-planted-teacher-9f3c2a7b",
    "AWS_ACCESS_KEY_ID": "AKIAFAULTPLANTED7Q2Z",
    "AWS_SECRET_ACCESS_KEY": "fault/planted+S3secret/Xy9WqLm3Tz",
    "AWS_SESSION_TOKEN": "FaultPlantedSessionToken0123456789",
    "MLFLOW_TRACKING_PASSWORD": "fault-planted-mlflow-password",
}


class Teacher:
    """An OpenAI-style endpoint on 127.0.0.1: 401 echoing the caller's key, or answers."""

    def __init__(self) -> None:
        self.fail = True
        self.seen_keys: list[str] = []
        teacher = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                auth = self.headers.get("Authorization", "")
                teacher.seen_keys.append(auth)
                if teacher.fail:
                    status, payload = 401, {"error": f"invalid credentials: {auth}"}
                else:
                    text = body["messages"][-1]["content"]
                    answer = {"role": "assistant", "content": json.dumps({"echo": text})}
                    status, payload = 200, {"choices": [{"message": answer}]}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def teacher(monkeypatch) -> Iterator[Teacher]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    endpoint = Teacher()
    yield endpoint
    endpoint.close()


@pytest.fixture
def planted(tmp_path, monkeypatch) -> Path:
    """Secrets in the environment; state and data roots of this test's own."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    state, root = tmp_path / "state", tmp_path / "root"
    monkeypatch.setenv("RUNG_STATE_DIR", str(state))
    monkeypatch.setenv("RUNG_DATA_ROOT", str(root))
    (root / "data" / "address").mkdir(parents=True)
    shutil.copy(paths.ADDRESS_CORPUS, root / "data" / "address" / "addresses.jsonl")
    return state


def hits(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


def scan_files(folder: Path) -> dict[str, list[str]]:
    """Every file under `folder` (databases included) that holds a planted value."""
    found = {}
    for file in folder.rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            names = [n for n, v in SECRETS.items() if v.encode() in data]
            if names:
                found[str(file)] = names
    return found


def test_planted_secrets_appear_in_no_param_tag_artifact_event_or_file(
    planted, teacher, tmp_path, record_property
):
    import dagster as dg

    from pipelines.defs.factory import run_stage
    from pipelines.lib import data_stages, tracking
    from pipelines.lib import training_set_stage as stage
    from pipelines.lib.asset_values import StageError, TrainingSet
    from pipelines.lib.training_stage import train_adapter
    from pipelines.recipe import load_recipe

    recipe_file = tmp_path / "secret-probe.yaml"
    recipe_file.write_text(
        "data:\n"
        "  sources: [data/address/addresses.jsonl]\n"
        "  fields: {prompt: address, completion: fields}\n"
        "  max_rows: 30\n"
        "train:\n"
        "  method: distill\n"
        f"  distill: {{teacher: {teacher.url}, teacher_model: big, api_key_env: {KEY_ENV}}}\n"
        "  max_steps: 1\n"
        "eval:\n"
        "  task: extraction\n"
    )
    recipe = load_recipe(recipe_file)
    run_folder = paths.runs_dir() / recipe.id / "probe-run"

    # The data stages, as the assets call them.
    base = data_stages.load_base_model(recipe)
    raw = data_stages.load_raw_data(recipe)
    cleaned = data_stages.clean_data(recipe, raw, base, run_folder / "cleaned_data")
    split = data_stages.split_data(recipe, raw, cleaned, run_folder / "split")
    found = stage.find_teacher(recipe)
    assert found["kind"] == "http"

    def no_local_model(*args, **kwargs):
        raise AssertionError("an HTTP teacher needs no local generation")

    def build() -> TrainingSet:
        folder = run_folder / "training_set"
        folder.mkdir(parents=True, exist_ok=True)
        return stage.build_training_set(recipe, base, split, found, folder, no_local_model)

    # A Dagster run whose step fails with the teacher's error: the event log records it.
    @dg.asset(name="training_set")
    def training_set_probe():
        return run_stage(build)

    (planted / ".dagster").mkdir(parents=True, exist_ok=True)
    instance = dg.DagsterInstance.local_temp(tempdir=str(planted / ".dagster"))
    try:
        result = dg.materialize([training_set_probe], instance=instance, raise_on_error=False)
        assert not result.success
        events = [str(record) for record in instance.all_logs(result.run_id)]
        failure = next(e for e in result.all_events if e.is_step_failure)
        description = failure.step_failure_data.user_failure_data.description
    finally:
        instance.dispose()
    # (a) a clear error: the endpoint and the cause, the echoed key masked
    assert f"teacher endpoint {teacher.url} failed" in description and "HTTP 401" in description
    assert "***" in description
    assert teacher.seen_keys[0] == f"Bearer {SECRETS[KEY_ENV]}"  # the key did go to the teacher

    # The training stage up to a trainer that crashes: MLflow run, params, tags, artifacts.
    def crashing_trainer(config: Path, log_file: Path, adapter_dir: Path, run_id: str) -> None:
        log_file.write_text("Traceback (most recent call last):\nRuntimeError: out of memory\n")
        raise RuntimeError("trainer exited with status 1")

    training_set = TrainingSet(
        method="distill",
        file=split.train_file,
        sha256=split.train_sha256,
        rows=split.train_rows,
        teacher=found,
    )
    with pytest.raises(StageError) as crashed:
        train_adapter(
            recipe,
            base,
            raw,
            split,
            training_set,
            run_folder / "training_run",
            crashing_trainer,
            dagster_run_id="probe-run",
        )
    assert "MLflow run" in str(crashed.value) and "marked FAILED" in str(crashed.value)

    # Everything MLflow recorded, through its API.
    client = tracking.configure_mlflow()
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT)
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED"
    params, tags = run.data.params, run.data.tags
    assert params["recipe.train.distill.api_key_env"] == KEY_ENV  # the name, never the value
    recorded = json.dumps({"params": params, "tags": tags, "name": run.info.run_name})
    artifacts = sorted(p for p in paths.mlflow_artifacts_dir().rglob("*") if p.is_file())
    assert {"secret-probe.yaml", "axolotl.yml"} <= {p.name for p in artifacts}

    # (c) the next normal operation: the teacher accepts, the training set is built
    teacher.fail = False
    built = build()
    assert built.rows == split.train_rows and Path(built.file).is_file()

    # (b) zero hits anywhere
    leaks = {
        "mlflow params/tags": hits(recorded),
        "dagster events": hits("\n".join(events)),
        "stage errors": hits(description + str(crashed.value)),
        "files under the state dir": scan_files(planted),
        "the data root": scan_files(tmp_path / "root"),
    }
    record_property("secret_hits", sum(len(v) for v in leaks.values()))
    assert not any(leaks.values()), leaks
    # controls: the byte scan does see what the stores hold (sqlite pages, artifacts)
    client.set_tag(run.info.run_id, "fault.canary", "canary-7c1e0d")
    assert files_holding(planted, "canary-7c1e0d")  # MLflow's database
    assert any(".dagster" in f for f in files_holding(planted, "invalid credentials: Bearer ***"))
    assert files_holding(planted, "RuntimeError: out of memory")  # the run folder's log
    assert len(artifacts) > 2


def files_holding(folder: Path, text: str) -> list[str]:
    return [str(f) for f in folder.rglob("*") if f.is_file() and text.encode() in f.read_bytes()]
