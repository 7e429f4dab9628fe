"""The shared profile on real services: `make stack` (PostgreSQL, SeaweedFS S3, an MLflow
server with served artifacts), the tiny recipe end to end against it, then every service
restarted and nothing lost.

Slow by nature (a real model trains for a few steps). The stack runs in a folder of its
own on the stack's fixed loopback ports; the embedded profile is restored afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import dagster as dg
import pytest

from pipelines import paths
from pipelines.lib import data_version, reproduction, stack, state_profile, tracking

pytestmark = pytest.mark.e2e

NAME = "address-tiny"  # the registered model (register.name defaults to the recipe id)
TIMINGS: dict[str, float] = {}


def _ensure_postgres() -> None:
    """Debian's PostgreSQL: installed here when missing and we may (root with apt-get)."""
    if stack.postgres_available():
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update"], capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "postgresql"], capture_output=True)
    if not stack.postgres_available():
        pytest.skip(
            "PostgreSQL binaries are absent and could not be installed "
            "(`apt-get install -y postgresql` needs root): the shared stack cannot run"
        )


def _port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((stack.HOST, port)) == 0


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """The stack, up, with rung pointed at it (its own state dir); torn down afterwards."""
    _ensure_postgres()
    busy = [p for p in (stack.PG_PORT, stack.S3_PORT, stack.MLFLOW_PORT) if _port_in_use(p)]
    if busy:
        pytest.fail(f"ports {busy} are in use: stop the running stack first (make stack-down)")
    # readable by the postgres user (pytest's own temporary folders are private to root)
    folder = Path(tempfile.mkdtemp(prefix="rung-stack-"))
    folder.chmod(0o755)
    services = stack.Stack(folder)
    began = time.monotonic()
    seconds = stack.up(services)
    TIMINGS["stack_first_start_s"] = time.monotonic() - began
    print(f"\nstack up from nothing in {TIMINGS['stack_first_start_s']:.1f} s ({seconds})")
    state = tmp_path_factory.mktemp("shared-state")
    with pytest.MonkeyPatch.context() as env:
        for name, value in services.env().items():
            env.setenv(name, value)
        env.setenv("RUNG_STATE_DIR", str(state))
        env.setenv("DAGSTER_HOME", str(state / ".dagster"))
        try:
            yield services
        finally:
            stack.down(services)
    data_version.configure_remote()  # the embedded profile's remote is the default again
    tracking.configure_mlflow()
    shutil.rmtree(folder, ignore_errors=True)
    print(f"\ntimings: {TIMINGS}")


RIVAL = "address-tiny-rival"  # another recipe (NO-SHIP by design), same registered model


@pytest.fixture(scope="module")
def shared_run(shared, tmp_path_factory):
    """The tiny recipe, run here while a second user (another state dir, the same stack)
    runs another recipe and this user launches the tiny one a second time."""
    from pipelines.launch import run_recipe
    from pipelines.recipe import load_recipe, recipe_path

    rung = str(paths.REPO_ROOT / ".venv" / "bin" / "rung")
    other = tmp_path_factory.mktemp("second-user")
    log = other / "rival.log"
    with log.open("w") as out:
        rival = subprocess.Popen(
            [rung, "run", str(recipe_path(RIVAL))],
            env={**os.environ, "RUNG_STATE_DIR": str(other), "DAGSTER_HOME": str(other / "dg")},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    # launched while the run below holds the recipe's lock: refused at once, writes nothing
    again = subprocess.Popen(
        ["bash", "-c", f"sleep 25 && exec {rung} run {recipe_path(NAME)}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    recipe = load_recipe(recipe_path(NAME))
    began = time.monotonic()
    outcome = run_recipe(recipe)
    TIMINGS["tiny_run_shared_s"] = time.monotonic() - began
    seconds = TIMINGS["tiny_run_shared_s"]
    print(f"\ntiny run in the shared profile (beside a second user's run): {seconds:.0f} s")
    assert outcome.success, f"the tiny recipe failed in the shared profile: {outcome.failure}"
    refused = again.communicate(timeout=300)[0]
    rival.wait(timeout=1800)
    TIMINGS["second_user_s"] = time.monotonic() - began
    return recipe, outcome, (again.returncode, refused), (rival.returncode, log.read_text())


def _rows(services: stack.Stack, database: str, query: str, *args) -> list[tuple]:
    connection = services.pg_connect(database)
    try:
        with connection.cursor() as cursor:
            cursor.execute(query, args)
            return cursor.fetchall()
    finally:
        connection.close()


def _bucket_keys(services: stack.Stack, prefix: str) -> list[str]:
    pages = services.s3_client().get_paginator("list_objects_v2")
    return [
        o["Key"]
        for p in pages.paginate(Bucket=stack.BUCKET, Prefix=prefix)
        for o in p.get("Contents", [])
    ]


def test_the_profile_points_at_the_stack(shared):
    import mlflow

    tracking.configure_mlflow()
    assert mlflow.get_tracking_uri() == shared.mlflow_uri
    assert state_profile.dvc_remote().url == f"s3://{stack.BUCKET}/dvc"
    assert all(shared.status().values())
    assert max(stack.up(shared).values()) < 5  # idempotent: healthy services are left alone


def test_the_run_and_its_registered_version_are_rows_in_postgresql(shared, shared_run):
    recipe, outcome, *_ = shared_run
    run_id = outcome.outputs["training_run"].mlflow_run_id
    [(status, name, artifact_uri)] = _rows(
        shared, "mlflow", "select status, name, artifact_uri from runs where run_uuid = %s", run_id
    )
    assert (status, name) == ("FINISHED", recipe.id)
    assert artifact_uri.startswith("mlflow-artifacts:/")  # the server's store, not a file://
    tags = dict(_rows(shared, "mlflow", "select key, value from tags where run_uuid = %s", run_id))
    assert tags["rung.data_dvc_md5"] == data_version.recorded_md5()
    assert tags["rung.recipe_sha256"] == recipe.sha256
    versions = _rows(
        shared, "mlflow", "select name, version from model_versions where run_id = %s", run_id
    )
    assert versions == [(NAME, 1)]
    aliases = _rows(
        shared,
        "mlflow",
        "select alias from registered_model_aliases where name = %s and version = 1 order by alias",
        NAME,
    )
    assert [a for (a,) in aliases] == ["challenger", "champion"]


def test_artifacts_and_the_data_version_are_in_the_bucket(shared, shared_run):
    recipe, outcome, *_ = shared_run
    run_id = outcome.outputs["training_run"].mlflow_run_id
    keys = _bucket_keys(shared, "mlflow/")
    run_keys = [k for k in keys if f"/{run_id}/artifacts/" in k]
    assert any(k.endswith(f"recipe/{recipe.id}.yaml") for k in run_keys), run_keys
    assert any(k.endswith("adapter/adapter_model.safetensors") for k in run_keys), run_keys
    # the registered model's files (MLflow 3 logged model) are in the bucket too
    assert any("/models/" in k and k.endswith("adapter_model.safetensors") for k in keys)
    md5 = data_version.recorded_md5()
    dvc_keys = _bucket_keys(shared, "dvc/")
    assert f"dvc/files/md5/{md5[:2]}/{md5[2:]}.dir" in dvc_keys
    assert not [p for p in paths.mlflow_artifacts_dir().rglob("*") if p.is_file()]  # no local copy


def test_the_dagster_run_is_in_postgresql(shared, shared_run):
    recipe, outcome, *_ = shared_run
    [(status, job)] = _rows(
        shared,
        "dagster",
        "select status, pipeline_name from runs where run_id = %s",
        outcome.dagster_run_id,
    )
    assert (status, job) == ("SUCCESS", "fine_tune")
    [(events,)] = _rows(
        shared,
        "dagster",
        "select count(*) from event_logs where run_id = %s and dagster_event_type = "
        "'ASSET_MATERIALIZATION'",
        outcome.dagster_run_id,
    )
    assert events >= 8
    history = paths.dagster_home() / "history"  # Dagster's local sqlite storage: unused
    assert not (history / "runs.db").exists() and not list(history.glob("runs/*.db"))


def test_two_users_at_once_each_get_their_own_runs(shared, shared_run):
    """The rival recipe, launched by a second user at the same time, completed with its own
    MLflow and Dagster runs in the shared stores; the tiny recipe's second launch was
    refused by its lock and left no run; the registry has the tiny run's version only."""
    recipe, outcome, (again_code, again_out), (rival_code, rival_log) = shared_run
    assert again_code != 0 and "already being launched" in again_out, again_out[-2000:]
    assert rival_code == 0, rival_log[-3000:]
    assert "rung summary: NO-SHIP" in rival_log  # its gate asks for an impossible margin
    runs = _rows(
        shared,
        "mlflow",
        "select r.name, r.status from runs r join tags t on t.run_uuid = r.run_uuid "
        "where t.key = 'rung.recipe_id' order by r.name",
    )
    assert runs == [(recipe.id, "FINISHED"), (RIVAL, "FINISHED")]
    dagster_runs = _rows(shared, "dagster", "select status from runs order by create_timestamp")
    assert [status for (status,) in dagster_runs] == ["SUCCESS", "SUCCESS"]  # no third run
    versions = _rows(shared, "mlflow", "select version from model_versions where name = %s", NAME)
    assert versions == [(1,)]


def test_concurrent_registrations_on_the_server_keep_one_champion_chain(shared, tmp_path):
    """Four processes register versions of one model at once through the MLflow server
    (PostgreSQL behind it); registrations wait for each other on an advisory lock."""
    from concurrent_registrations import assert_consistent, register_at_once

    name = "stack-concurrent"
    outcomes = register_at_once(tmp_path, name, [0.6, 0.7, 0.8, 0.9], evaluated={})
    assert_consistent(name, outcomes, first_version=1)
    # the first to take the lock found no champion and became it; the others had been
    # evaluated with no champion either, so none of them displaced it
    [first] = [o for o in outcomes if "champion" in o["moves"]]
    assert first["version"] == "1"


def test_no_secret_reaches_a_tracked_file_a_param_a_tag_or_the_dagster_yaml(shared, shared_run):
    _, outcome, *_ = shared_run
    secrets = list(shared.secrets.values())
    run = tracking.configure_mlflow().get_run(outcome.outputs["training_run"].mlflow_run_id)
    recorded = [*run.data.params.values(), *run.data.tags.values()]
    recorded.append((paths.dagster_home() / "dagster.yaml").read_text())
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=paths.REPO_ROOT, capture_output=True, text=True
    ).stdout.split("\0")
    for name in [*tracked, ".dvc/config.local"]:
        file = paths.REPO_ROOT / name
        if name and file.is_file() and file.stat().st_size < 5_000_000:
            recorded.append(file.read_text(errors="replace"))
    for secret in secrets:
        assert not [text for text in recorded if secret in text]


def test_nothing_is_lost_when_every_service_restarts(shared, shared_run, tmp_path):
    recipe, outcome, *_ = shared_run
    run_id = outcome.outputs["training_run"].mlflow_run_id
    stack.down(shared)
    assert not any(shared.status().values())
    began = time.monotonic()
    stack.up(shared)
    TIMINGS["stack_restart_s"] = time.monotonic() - began

    client = tracking.configure_mlflow()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["rung.recipe_id"] == recipe.id
    champion = client.get_model_version_by_alias(NAME, "champion")
    assert (champion.version, champion.run_id) == ("1", run_id)
    assert sorted(client.get_model_version(NAME, "1").aliases) == ["challenger", "champion"]
    instance = dg.DagsterInstance.get()
    assert instance.get_run_by_id(outcome.dagster_run_id).status == dg.DagsterRunStatus.SUCCESS

    # the data version, pulled through DVC from the bucket into an empty DVC cache
    md5 = run.data.tags["rung.data_dvc_md5"]
    cache = data_version.fetch_data_version(md5, tmp_path / "fetch")
    restored = data_version.restore_data_version(md5, tmp_path / "data", [cache])
    assert restored and data_version.directory_md5(tmp_path / "data") == md5

    # reproduction's workspace from the shared state: the run named by the registry alias,
    # its recipe from the server's artifacts (checked against its sha256), its data version
    original = reproduction.load_original(reproduction.resolve_run(f"models:/{NAME}@champion"))
    assert original.run_id == run_id
    recipe_file = reproduction.prepare_workspace(original, tmp_path / "workspace")
    assert recipe_file.read_bytes() == recipe.path.read_bytes()
    assert data_version.directory_md5(tmp_path / "workspace" / "data") == md5


def test_rung_reproduce_works_from_the_shared_state(shared, shared_run):
    """After the restart: `rung reproduce` of the registry's champion re-runs the tiny recipe
    from what the shared stores hold, and its own records land there too."""
    from pipelines.lib.reproduction import format_comparison
    from pipelines.reproduce import reproduce

    _, outcome, *_ = shared_run
    original = outcome.outputs["training_run"].mlflow_run_id
    began = time.monotonic()
    done = reproduce(f"models:/{NAME}@champion")
    TIMINGS["reproduce_shared_s"] = time.monotonic() - began
    print(format_comparison(done.comparison))
    assert done.original_run_id == original and done.reproduced_run_id not in (None, original)
    assert done.comparison.reproduced  # lineage hashes equal, metrics within tolerance
    [(tag,)] = _rows(
        shared,
        "mlflow",
        "select value from tags where run_uuid = %s and key = 'rung.reproduces'",
        done.reproduced_run_id,
    )
    assert tag == original
    [(status,)] = _rows(
        shared, "dagster", "select status from runs where run_id = %s", done.dagster_run_id
    )
    assert status == "SUCCESS"
    versions = _rows(shared, "mlflow", "select version from model_versions where name = %s", NAME)
    assert versions == [(1,)]  # a reproduction registers nothing
