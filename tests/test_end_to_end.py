"""The whole graph on a tiny recipe: real Dagster, Axolotl, MLflow and DVC.

Slow by nature (a real model trains for a few steps): one session-scoped run is
shared by the assertions.
"""

import json
import math
import subprocess
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from pipelines import paths
from pipelines.launch import job_assets, run_recipe
from pipelines.lib import data_version, tracking
from pipelines.recipe import load_recipe, recipe_path

pytestmark = pytest.mark.e2e

ADAPTER_CHANGES_OUTPUT = """
import sys, torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
base_dir, adapter_dir = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(base_dir)
ids = tok("<|im_start|>user\\n9 Oak Ave, Springfield<|im_end|>\\n<|im_start|>assistant\\n",
          return_tensors="pt", add_special_tokens=False)
model = AutoModelForCausalLM.from_pretrained(base_dir)
with torch.no_grad():
    before = model(**ids).logits
    tuned = PeftModel.from_pretrained(model, adapter_dir)
    after = tuned(**ids).logits
print((after - before).abs().max().item())
"""


# `tiny_run` (tests/conftest.py): one session-scoped run of address-tiny, shared with
# tests/test_registry_end_to_end.py.


def test_every_asset_materialized_in_the_persistent_instance(tiny_run):
    recipe, outcome = tiny_run
    instance = dg.DagsterInstance.get()
    # registered_prompt materializes only when a cheaper rung reached eval.target (unset here)
    for name in [a for a in job_assets() if a != "registered_prompt"]:
        # this recipe's partition: other tests materialize other recipes in the same instance
        wanted = dg.AssetRecordsFilter(asset_key=dg.AssetKey(name), asset_partitions=[recipe.id])
        records = instance.fetch_materializations(wanted, limit=1).records
        assert records and records[0].run_id == outcome.dagster_run_id, name
        assert records[0].asset_materialization.partition == recipe.id
    assert instance.get_run_by_id(outcome.dagster_run_id).job_name == "fine_tune"


def test_mlflow_run_carries_lineage_tags(tiny_run):
    recipe, outcome = tiny_run
    run = tracking.configure_mlflow().get_run(outcome.outputs["training_run"].mlflow_run_id)
    tags = run.data.tags
    assert run.info.status == "FINISHED"
    assert tags["rung.recipe_id"] == recipe.id == run.info.run_name
    assert tags["rung.recipe_sha256"] == recipe.sha256
    assert tags["rung.dagster_run_id"] == outcome.dagster_run_id
    assert tags["rung.data_dvc_md5"] == data_version.recorded_md5()
    assert tags["rung.base_model"] == "smollm2-135m-instruct"
    assert tags["rung.base_model_sha256"] == outcome.outputs["base_model"].sha256
    assert len(tags["rung.git_commit"]) in (40, len("unknown"))
    for package in ("axolotl", "transformers", "peft", "torch"):
        assert tags[f"rung.version.{package}"][0].isdigit(), package
    assert tags["rung.version.axolotl"] == "0.19.0"


def test_training_and_evaluation_metrics_land_in_the_same_run(tiny_run):
    recipe, outcome = tiny_run
    client = tracking.configure_mlflow()
    run_id = outcome.outputs["training_run"].mlflow_run_id
    metrics = client.get_run(run_id).data.metrics
    # Axolotl's own callback logs per-step loss (logging_steps: 1) into our run.
    steps = recipe.spec.train.max_steps
    assert len(client.get_metric_history(run_id, "loss")) == steps
    assert outcome.outputs["training_run"].steps == steps
    assert 0 < metrics["tuned.heldout_loss"] < metrics["baseline.heldout_loss"]
    assert metrics["tuned.heldout_perplexity"] == pytest.approx(
        math.exp(metrics["tuned.heldout_loss"])
    )
    for candidate in ("baseline", "few_shot", "tuned"):
        assert 0.0 <= metrics[f"{candidate}.field_f1"] <= 1.0
        assert f"{candidate}.valid_json" in metrics
    assert (
        metrics["gate.interval_low"] <= metrics["gate.difference"] <= metrics["gate.interval_high"]
    )


def test_the_ladder_verdict_gates_registration(tiny_run):
    _, outcome = tiny_run
    report = outcome.outputs["evaluation"].report
    run = tracking.configure_mlflow().get_run(outcome.outputs["training_run"].mlflow_run_id)
    assert run.data.tags["rung.verdict"] == report["verdict"]["label"] == "SHIP"
    assert report["heldout_rows"] == outcome.outputs["split"].heldout_rows
    assert report["probe_count"] >= 30
    checks = dg.DagsterInstance.get().all_logs(
        outcome.dagster_run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    )
    (gate,) = [
        c.dagster_event.event_specific_data
        for c in checks
        if c.dagster_event.event_specific_data.check_name == "ship_gate"
    ]
    assert gate.passed


def test_artifacts_hold_recipe_config_adapter_and_report(tiny_run):
    recipe, outcome = tiny_run
    client = tracking.configure_mlflow()
    run_id = outcome.outputs["training_run"].mlflow_run_id
    listed = {
        a.path
        for folder in ("recipe", "axolotl", "adapter", "evaluation", "logs")
        for a in client.list_artifacts(run_id, folder)
    }
    assert {
        "recipe/address-tiny.yaml",
        "axolotl/axolotl.yml",
        "adapter/adapter_model.safetensors",
        "adapter/adapter_config.json",
        "evaluation/report.json",
        "evaluation/report.md",
        "evaluation/report.html",
        "evaluation/predictions.parquet",
        "logs/train.log",
    } <= listed
    assert client.list_artifacts(run_id, "evaluation/charts")
    # the HTML report carries its charts inline (MLflow's HTML viewer shows them)
    page = Path(client.download_artifacts(run_id, "evaluation/report.html")).read_text()
    assert "Verdict:" in page and page.count('<img src="data:image/png;base64,') >= 2
    local = client.download_artifacts(run_id, "recipe/address-tiny.yaml")
    assert Path(local).read_bytes() == recipe.path.read_bytes()
    predictions = pd.read_parquet(
        client.download_artifacts(run_id, "evaluation/predictions.parquet")
    )
    heldout = predictions[predictions["set"] == "heldout"]
    assert set(heldout["candidate"]) == {"baseline", "few_shot", "tuned"}
    assert heldout.groupby("candidate")["id"].apply(frozenset).nunique() == 1  # same rows


def test_adapter_loads_with_peft_and_changes_the_model(tiny_run):
    _, outcome = tiny_run
    done = subprocess.run(
        [
            str(paths.TRAINER_PYTHON),
            "-c",
            ADAPTER_CHANGES_OUTPUT,
            outcome.outputs["base_model"].path,
            outcome.outputs["registered_adapter"].adapter_dir,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert float(done.stdout.strip().splitlines()[-1]) > 1e-3


def test_data_card_datasets_and_hashes_are_on_the_mlflow_run(tiny_run):
    _, outcome = tiny_run
    client = tracking.configure_mlflow()
    split = outcome.outputs["split"]
    run = client.get_run(outcome.outputs["training_run"].mlflow_run_id)
    datasets = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert datasets["train"].dataset.digest == split.train_sha256[:32]
    assert datasets["heldout"].dataset.digest == split.heldout_sha256[:32]
    assert {t.value for t in datasets["train"].tags} == {"training"}
    assert run.data.tags["rung.cleaned_sha256"] == split.cleaned_sha256
    listed = {a.path for a in client.list_artifacts(run.info.run_id, "data_card")}
    assert {"data_card/data_card.md", "data_card/lengths.png", "data_card/drops.png"} <= listed
    card = Path(client.download_artifacts(run.info.run_id, "data_card/data_card.md")).read_text()
    assert card.startswith("# Data card: address-tiny") and "![lengths](lengths.png)" in card


def test_inputs_are_untouched(tiny_run):
    assert data_version.workspace_matches_dvc()


def test_a_broken_model_fails_the_run_and_registers_nothing():
    # The first step that loads the model (the cheap rungs, before any training) crashes.
    recipe = load_recipe(recipe_path("address-broken-model"))
    outcome = run_recipe(recipe)
    assert not outcome.success and outcome.verdict is None
    assert "training_run" not in outcome.outputs and "registered_adapter" not in outcome.outputs
    assert outcome.failure.startswith("cheap_rungs: recipe address-broken-model: the base model")

    instance = dg.DagsterInstance.get()
    failures = instance.all_logs(outcome.dagster_run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    (failure,) = [f for f in failures if f.step_key == "cheap_rungs"]
    message = failure.dagster_event.step_failure_data.user_failure_data.description
    assert "could not answer" in message and "marked FAILED" in message

    client = tracking.configure_mlflow()
    (run,) = client.search_runs(
        [client.get_experiment_by_name(tracking.EXPERIMENT).experiment_id],
        filter_string=f"tags.`rung.dagster_run_id` = '{outcome.dagster_run_id}'",
    )
    assert run.info.status == "FAILED"
    assert client.list_artifacts(run.info.run_id, "adapter") == []


def test_a_no_ship_verdict_registers_nothing():
    recipe = load_recipe(recipe_path("address-no-ship"))
    outcome = run_recipe(recipe)
    # An honest NO-SHIP is an outcome, not a crash: the run succeeds, the gate warns, and
    # registered_adapter registers and materializes nothing, with an observation saying why.
    assert outcome.verdict == "NO-SHIP" and outcome.success and outcome.completed
    assert "registered_adapter" not in outcome.outputs
    instance = dg.DagsterInstance.get()
    (gate,) = [
        e.dagster_event.event_specific_data
        for e in instance.all_logs(
            outcome.dagster_run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        )
        if e.dagster_event.event_specific_data.check_name == "ship_gate"
    ]
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.WARN
    assert gate.description.startswith("NO-SHIP: ")
    materialized = instance.all_logs(
        outcome.dagster_run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    )
    assert "registered_adapter" not in {e.step_key for e in materialized}
    (observation,) = [
        e
        for e in instance.all_logs(
            outcome.dagster_run_id, of_type=dg.DagsterEventType.ASSET_OBSERVATION
        )
        if e.step_key == "registered_adapter"
    ]
    assert (
        "nothing registered"
        in observation.dagster_event.event_specific_data.asset_observation.description
    )
    client = tracking.configure_mlflow()
    run = client.get_run(outcome.outputs["training_run"].mlflow_run_id)
    assert run.info.status == "FINISHED" and run.data.tags["rung.verdict"] == "NO-SHIP"
    assert any("FAIL margin" in r for r in outcome.outputs["evaluation"].verdict["reasons"])
    assert client.list_artifacts(run.info.run_id, "adapter") == []
    # its training set is the split's rows plus the base model's own rehearsal answers
    learned = outcome.outputs["training_set"]
    rows = [json.loads(line) for line in Path(learned.file).read_text().splitlines()]
    rehearsed = [r for r in rows if r["id"].startswith("rehearsal-")]
    assert learned.rehearsal_rows == len(rehearsed) > 0
    assert len(rows) == outcome.outputs["split"].train_rows + len(rehearsed)
    assert all([m["role"] for m in r["messages"]] == ["user", "assistant"] for r in rehearsed)


def test_qlora_on_a_cpu_machine_stops_before_training_with_a_clear_message():
    outcome = run_recipe(load_recipe(recipe_path("address-qlora")))
    assert not outcome.success and "training_run" not in outcome.outputs
    failures = dg.DagsterInstance.get().all_logs(
        outcome.dagster_run_id, of_type=dg.DagsterEventType.STEP_FAILURE
    )
    (failure,) = [f for f in failures if f.step_key == "training_run"]
    message = failure.dagster_event.step_failure_data.user_failure_data.description
    assert "QLoRA" in message and "needs a CUDA GPU" in message
    assert "Traceback" not in message


def test_a_tiny_dpo_run_learns_from_on_policy_pairs():
    outcome = run_recipe(load_recipe(recipe_path("address-dpo-tiny")))
    assert outcome.completed, "the DPO run failed; see the Dagster log above"
    pairs = outcome.outputs["training_set"]
    assert pairs.method == "dpo" and pairs.rows > 0
    first = json.loads(Path(pairs.file).read_text().splitlines()[0])
    assert {"messages", "chosen", "rejected"} <= set(first) and first["chosen"] != first["rejected"]
    client = tracking.configure_mlflow()
    run = client.get_run(outcome.outputs["training_run"].mlflow_run_id)
    assert run.data.tags["rung.method"] == "dpo"
    assert any(key.startswith("rewards/") for key in run.data.metrics)  # TRL's DPO metrics
    assert "tuned.win_rate_vs_baseline" in run.data.metrics
