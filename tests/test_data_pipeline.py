"""The data stages and their checks in Dagster: blocking checks stop training."""

import dagster as dg
import pytest

from pipelines.launch import ensure_dagster_home, run_recipe
from pipelines.lib.base_model import embedded_model_dir
from pipelines.recipe import load_recipe, recipe_path

pytestmark = pytest.mark.skipif(
    not (embedded_model_dir() / "config.json").is_file(),
    reason="embedded base model not prepared (make model)",
)
DATA_ASSETS = [dg.AssetKey(k) for k in ("base_model", "raw_data", "cleaned_data", "split")]


def check_evaluations(instance: dg.DagsterInstance, run_id: str) -> dict[str, object]:
    events = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    return {
        e.dagster_event.event_specific_data.check_name: e.dagster_event.event_specific_data
        for e in events
    }


def test_a_planted_leak_fails_the_check_and_training_does_not_start():
    outcome = run_recipe(load_recipe(recipe_path("leaky-near-duplicates")))
    assert not outcome.success
    assert "split" in outcome.outputs and "training_run" not in outcome.outputs
    instance = dg.DagsterInstance.get()
    checks = check_evaluations(instance, outcome.dagster_run_id)
    assert not checks["no_leakage"].passed
    assert "leak into training" in checks["no_leakage"].description
    assert checks["schema_valid"].passed and checks["heldout_size"].passed
    started = instance.all_logs(outcome.dagster_run_id, of_type=dg.DagsterEventType.STEP_START)
    assert "training_run" not in {e.step_key for e in started}  # training never started
    materialized = instance.all_logs(
        outcome.dagster_run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    )
    assert {e.step_key for e in materialized} == {"base_model", "raw_data", "cleaned_data", "split"}


def test_labelled_data_stages_pass_their_checks_and_show_a_data_card():
    from pipelines.definitions import defs

    ensure_dagster_home()
    instance = dg.DagsterInstance.get()
    result = defs.resolve_job_def("fine_tune").execute_in_process(
        partition_key="tickets-labelled",
        instance=instance,
        asset_selection=DATA_ASSETS,
    )
    assert result.success
    checks = check_evaluations(instance, result.run_id)
    assert set(checks) == {
        "schema_valid",
        "no_duplicates",
        "no_leakage",
        "class_balance",
        "heldout_size",
    }
    assert all(c.passed for c in checks.values())
    split = result.output_for_node("split")
    assert split.label_field == "team" and split.heldout_rows >= 3
    event = instance.get_latest_materialization_event(dg.AssetKey("split"))
    card = event.asset_materialization.metadata["data_card"].value
    assert card.startswith("# Data card: tickets-labelled")
    assert card.count("data:image/png;base64,") == 3  # lengths, labels, drop reasons
    cleaned = instance.get_latest_materialization_event(dg.AssetKey("cleaned_data"))
    assert cleaned.asset_materialization.metadata["counts_reconcile"].value is True
