import pytest

from pipelines.lib import tracking


def test_one_mlflow_run_per_recipe_and_dagster_run():
    first = tracking.start_run("recipe-a", "dagster-1", {"rung.x": "1"})
    again = tracking.start_run("recipe-a", "dagster-1", {"rung.y": "2"})
    other = tracking.start_run("recipe-a", "dagster-2", {})
    assert first == again != other
    run = tracking.configure_mlflow().get_run(first)
    assert run.data.tags["rung.recipe_id"] == "recipe-a"
    assert run.data.tags["rung.x"] == "1" and run.data.tags["rung.y"] == "2"
    assert run.info.run_name == "recipe-a"


def test_an_exception_marks_the_run_failed():
    run_id = tracking.start_run("recipe-b", "dagster-3", {})
    with pytest.raises(RuntimeError), tracking.failing_marks_run(run_id):
        raise RuntimeError("trainer crashed")
    assert tracking.configure_mlflow().get_run(run_id).info.status == "FAILED"


def test_params_are_logged_once_and_never_changed():
    run_id = tracking.start_run("recipe-c", "dagster-4", {})
    client = tracking.configure_mlflow()
    tracking.log_params(client, run_id, tracking.flatten("recipe", {"train": {"lora_r": 8}}))
    tracking.log_params(client, run_id, {"recipe.train.lora_r": 16})
    assert client.get_run(run_id).data.params == {"recipe.train.lora_r": "8"}


def test_git_state_names_the_commit():
    state = tracking.git_state()
    assert set(state) == {"git_commit", "git_dirty"}
    assert state["git_dirty"] in {"true", "false", "unknown"}


@pytest.fixture
def fresh_store(tmp_path, monkeypatch):
    """An empty MLflow sqlite store under tmp_path (rung's session store afterwards)."""
    import mlflow

    from pipelines import paths

    session_uri = paths.mlflow_tracking_uri()
    monkeypatch.setenv("RUNG_STATE_DIR", str(tmp_path))
    yield tmp_path
    mlflow.set_tracking_uri(session_uri)


def test_many_params_metrics_and_tags_land_in_batches(fresh_store):
    tags = {f"rung.tag{i}": str(i) for i in range(150)}
    run_id = tracking.start_run("recipe-many", "dagster-5", tags)
    client = tracking.configure_mlflow()
    params = {f"recipe.p{i:03d}": i for i in range(250)}
    tracking.log_params(client, run_id, params)
    tracking.log_params(client, run_id, {"recipe.p000": "changed", "recipe.extra": "x" * 7000})
    tracking.log_metrics(client, run_id, {f"eval.m{i:04d}": i / 10 for i in range(1200)}, step=3)
    data = client.get_run(run_id).data
    assert data.params == {
        **{k: str(v) for k, v in params.items()},
        "recipe.extra": "x" * 6000,  # MLflow's longest param value
    }
    assert len(data.metrics) == 1200 and data.metrics["eval.m1199"] == pytest.approx(119.9)
    assert client.get_metric_history(run_id, "eval.m0007")[0].step == 3
    assert {k: v for k, v in data.tags.items() if k.startswith("rung.tag")} == tags


def test_the_experiment_opens_as_model_training_in_mlflow(fresh_store):
    import mlflow

    from pipelines import paths

    # an experiment made before rung marked its kind gets the tag too
    (fresh_store / "mlruns").mkdir()
    mlflow.set_tracking_uri(paths.mlflow_tracking_uri())
    mlflow.MlflowClient().create_experiment(tracking.EXPERIMENT)
    for _ in range(2):  # idempotent
        client = tracking.configure_mlflow()
        experiment = client.get_experiment_by_name(tracking.EXPERIMENT)
        assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_a_new_experiment_is_created_as_model_training(fresh_store):
    experiment = tracking.configure_mlflow().get_experiment_by_name(tracking.EXPERIMENT)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert experiment.artifact_location.endswith("mlruns/artifacts")
