"""`make stack` without starting anything: the variables it hands out, its secrets file,
and stopping a stack that is not running (tests/test_shared_stack.py runs the real one)."""

import stat

from pipelines.lib import stack, state_profile


def test_the_env_points_every_piece_of_state_at_the_stack(tmp_path):
    services = stack.Stack(tmp_path / "stack")
    env = services.env()
    assert env[state_profile.MLFLOW_URI_ENV] == f"http://127.0.0.1:{stack.MLFLOW_PORT}"
    assert env[state_profile.DVC_REMOTE_URL_ENV] == "s3://rung/dvc"
    assert env[state_profile.DVC_ENDPOINT_ENV] == "http://127.0.0.1:8333"
    assert env[state_profile.DAGSTER_PG_URL_ENV].endswith(f"@127.0.0.1:{stack.PG_PORT}/dagster")
    remote = state_profile.dvc_remote(env)  # accepted: no keys in the URLs
    assert remote.name == "shared" and remote.endpoint == "http://127.0.0.1:8333"
    assert "AWS_SECRET_ACCESS_KEY" in env


def test_secrets_are_generated_once_and_private(tmp_path):
    services = stack.Stack(tmp_path / "stack")
    first = services.secrets
    assert first == stack.Stack(tmp_path / "stack").secrets
    mode = (tmp_path / "stack" / "secrets.json").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
    assert first != stack.Stack(tmp_path / "other").secrets


def test_stopping_a_stack_that_is_not_running_does_nothing(tmp_path):
    services = stack.Stack(tmp_path / "stack")
    (tmp_path / "stack").mkdir()
    (tmp_path / "stack" / "mlflow.pid").write_text("999999999")  # stale: no such process
    stack.down(services)
    assert not (tmp_path / "stack" / "mlflow.pid").exists()
