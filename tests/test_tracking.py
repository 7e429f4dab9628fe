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
