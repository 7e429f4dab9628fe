"""The whole graph on a tiny recipe: real Dagster, Axolotl, MLflow and DVC.

Slow by nature (a real model trains for a few steps): one module-scoped run is
shared by the assertions.
"""

import json
import subprocess

import dagster as dg
import pytest

from pipelines import paths
from pipelines.launch import run_recipe
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


@pytest.fixture(scope="module")
def tiny_run():
    recipe = load_recipe(recipe_path("address-tiny"))
    outcome = run_recipe(recipe)
    assert outcome.success, "the tiny recipe's run failed; see the Dagster log above"
    return recipe, outcome


def test_every_asset_materialized_in_the_persistent_instance(tiny_run):
    recipe, outcome = tiny_run
    instance = dg.DagsterInstance.get()
    for name in ("base_model", "raw_data", "cleaned_data", "split", "training_run",
                 "evaluation", "registered_adapter"):
        event = instance.get_latest_materialization_event(dg.AssetKey(name))
        assert event is not None and event.run_id == outcome.dagster_run_id, name
        assert event.asset_materialization.partition == recipe.id
    assert instance.get_run_by_id(outcome.dagster_run_id).job_name == "fine_tune"


def test_mlflow_run_carries_lineage_tags(tiny_run):
    recipe, outcome = tiny_run
    run = tracking.configure_mlflow().get_run(outcome.outputs["training_run"]["mlflow_run_id"])
    tags = run.data.tags
    assert run.info.status == "FINISHED"
    assert tags["rung.recipe_id"] == recipe.id == run.info.run_name
    assert tags["rung.recipe_sha256"] == recipe.sha256
    assert tags["rung.dagster_run_id"] == outcome.dagster_run_id
    assert tags["rung.data_dvc_md5"] == data_version.recorded_md5()
    assert tags["rung.base_model"] == "smollm2-135m-instruct"
    assert tags["rung.base_model_sha256"] == outcome.outputs["base_model"]["sha256"]
    assert len(tags["rung.git_commit"]) in (40, len("unknown"))
    for package in ("axolotl", "transformers", "peft", "torch"):
        assert tags[f"rung.version.{package}"][0].isdigit(), package
    assert tags["rung.version.axolotl"] == "0.19.0"


def test_training_and_evaluation_metrics_land_in_the_same_run(tiny_run):
    _, outcome = tiny_run
    client = tracking.configure_mlflow()
    run_id = outcome.outputs["training_run"]["mlflow_run_id"]
    metrics = client.get_run(run_id).data.metrics
    # Axolotl's own callback logs per-step loss (logging_steps: 1) into our run.
    assert len(client.get_metric_history(run_id, "loss")) == 4
    assert outcome.outputs["training_run"]["steps"] == 4
    assert metrics["heldout_rows"] == outcome.outputs["split"]["heldout_rows"] > 0
    assert 0 < metrics["heldout_loss"] < metrics["base_heldout_loss"]
    assert metrics["heldout_perplexity"] == pytest.approx(2.718281828 ** metrics["heldout_loss"])


def test_artifacts_hold_recipe_config_adapter_and_report(tiny_run):
    recipe, outcome = tiny_run
    client = tracking.configure_mlflow()
    run_id = outcome.outputs["training_run"]["mlflow_run_id"]
    listed = {a.path for folder in ("recipe", "axolotl", "adapter", "evaluation", "logs")
              for a in client.list_artifacts(run_id, folder)}
    assert {"recipe/address-tiny.yaml", "axolotl/axolotl.yml", "adapter/adapter_model.safetensors",
            "adapter/adapter_config.json", "evaluation/evaluation.json", "logs/train.log"} <= listed
    local = client.download_artifacts(run_id, "recipe/address-tiny.yaml")
    assert open(local, "rb").read() == recipe.path.read_bytes()
    evaluation = json.loads(open(client.download_artifacts(run_id, "evaluation/evaluation.json")).read())
    assert len(evaluation["samples"]) == 2
    assert all(sample["tuned"] and sample["reference"] for sample in evaluation["samples"])


def test_adapter_loads_with_peft_and_changes_the_model(tiny_run):
    _, outcome = tiny_run
    done = subprocess.run(
        [str(paths.TRAINER_PYTHON), "-c", ADAPTER_CHANGES_OUTPUT,
         outcome.outputs["base_model"]["path"], outcome.outputs["registered_adapter"]["adapter_dir"]],
        capture_output=True, text=True, check=True,
    )
    assert float(done.stdout.strip().splitlines()[-1]) > 1e-3


def test_inputs_are_untouched(tiny_run):
    assert data_version.workspace_matches_dvc()


def test_an_axolotl_crash_fails_the_run_and_registers_nothing():
    recipe = load_recipe(recipe_path("address-broken-model"))
    outcome = run_recipe(recipe)
    assert not outcome.success
    assert "training_run" not in outcome.outputs and "registered_adapter" not in outcome.outputs

    instance = dg.DagsterInstance.get()
    failures = instance.all_logs(outcome.dagster_run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    (failure,) = [f for f in failures if f.step_key == "training_run"]
    message = failure.dagster_event.step_failure_data.error.message
    assert "training failed for recipe address-broken-model" in message
    assert "marked FAILED" in message and "last lines of" in message

    client = tracking.configure_mlflow()
    (run,) = client.search_runs(
        [client.get_experiment_by_name(tracking.EXPERIMENT).experiment_id],
        filter_string=f"tags.`rung.dagster_run_id` = '{outcome.dagster_run_id}'",
    )
    assert run.info.status == "FAILED"
    assert client.list_artifacts(run.info.run_id, "adapter") == []
