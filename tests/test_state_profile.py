"""Where state lives: the embedded default with nothing set, the shared profile from the
environment, and credentials kept out of what rung writes."""

import pytest

from pipelines import paths
from pipelines.launch import ensure_dagster_home
from pipelines.lib import state_profile
from pipelines.lib.state_profile import StateProfileError

SHARED = {
    "RUNG_MLFLOW_URI": "http://mlflow.team:5000",
    "RUNG_DVC_REMOTE_URL": "s3://rung/dvc",
    "RUNG_DVC_ENDPOINT": "http://s3.team:8333",
    "RUNG_DAGSTER_PG_URL": "postgresql+psycopg2://rung:s3cret@db.team:5432/dagster",
}


def test_nothing_set_is_the_embedded_default():
    assert state_profile.mlflow_tracking_uri({}) == paths.mlflow_tracking_uri()
    assert paths.mlflow_tracking_uri().startswith("sqlite:///")
    assert state_profile.experiment_artifact_location({}) == paths.mlflow_artifacts_dir().as_uri()
    remote = state_profile.dvc_remote({})
    assert remote.is_local and remote.url == str(paths.dvc_remote_dir()) and not remote.endpoint
    assert state_profile.dagster_pg_url({}) is None
    assert "storage" not in state_profile.dagster_yaml({})
    assert not state_profile.is_shared({})


def test_the_shared_profile_comes_from_the_environment():
    assert state_profile.mlflow_tracking_uri(SHARED) == "http://mlflow.team:5000"
    assert state_profile.experiment_artifact_location(SHARED) is None  # the server decides
    remote = state_profile.dvc_remote(SHARED)
    assert (remote.name, remote.url, remote.endpoint) == (
        "shared",
        "s3://rung/dvc",
        "http://s3.team:8333",
    )
    assert state_profile.is_shared(SHARED)


def test_the_dagster_yaml_names_the_variable_never_the_password():
    text = state_profile.dagster_yaml(SHARED)
    assert "env: RUNG_DAGSTER_PG_URL" in text and "postgres:" in text
    assert "s3cret" not in text


def test_describe_masks_passwords():
    text = state_profile.describe(SHARED)
    assert "s3cret" not in text and "rung:***@db.team:5432" in text


def test_credentials_in_the_dvc_urls_are_refused():
    with pytest.raises(StateProfileError, match="AWS_ACCESS_KEY_ID"):
        state_profile.dvc_remote({"RUNG_DVC_REMOTE_URL": "s3://key:secret@rung/dvc"})
    with pytest.raises(StateProfileError, match="RUNG_DVC_REMOTE_URL"):
        state_profile.dvc_remote({"RUNG_DVC_ENDPOINT": "http://s3:8333"})
    for url in ("mysql://x@y/z", "postgresql://x@y/z", "postgresql+psycopg://x:pw@y/z"):
        with pytest.raises(StateProfileError, match="postgresql[+]psycopg2://"):
            state_profile.dagster_pg_url({"RUNG_DAGSTER_PG_URL": url})


def test_credentials_in_the_mlflow_uri_are_refused():
    with pytest.raises(StateProfileError, match="MLFLOW_TRACKING_PASSWORD"):
        state_profile.mlflow_tracking_uri({"RUNG_MLFLOW_URI": "https://me:s3cret@mlflow.team"})
    assert state_profile.mlflow_tracking_uri(SHARED) == "http://mlflow.team:5000"


def test_ensure_dagster_home_follows_the_profile_and_spares_a_users_file(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNG_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / ".dagster"))  # restored afterwards
    config = ensure_dagster_home() / "dagster.yaml"
    assert config.read_text() == state_profile.dagster_yaml({})
    monkeypatch.setenv("RUNG_DAGSTER_PG_URL", SHARED["RUNG_DAGSTER_PG_URL"])
    ensure_dagster_home()
    assert "env: RUNG_DAGSTER_PG_URL" in config.read_text()
    config.write_text("# mine\ntelemetry:\n  enabled: false\n")
    ensure_dagster_home()
    assert config.read_text().startswith("# mine")
