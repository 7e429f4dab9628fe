"""A training that diverges stops there, fails its run and registers nothing.

The fixture recipe `address-diverge` trains for real with the largest learning rate the
schema accepts (0.99), a constant schedule and a LoRA scale of 4096 (alpha 4096, r 1):
within a few steps the activations overflow in float32 and the model collapses (its
loss jumps, then sits at ln(vocabulary size) with no gradient left). Transformers and
Axolotl would train on to max_steps and save that adapter; rung's guard plugin
(pipelines/worker/axolotl_guard.py) stops at the step the divergence shows and the
training stage fails the run naming it. Then the recipe is fixed (a normal learning
rate) and the next run trains, reusing the data stages and the cheap rungs.

Real components throughout: the recipe's Dagster job in process, Axolotl in the trainer
environment through Dagster Pipes, the MLflow store, the asset cache.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

RECIPE = "address-diverge"
UP_TO_TRAINING = [
    "base_model",
    "raw_data",
    "cleaned_data",
    "split",
    "cheap_rungs",
    "training_set",
    "training_run",
]
# The fix a user would make: a normal learning rate, schedule and LoRA scale; two steps.
FIXED_TRAIN = """train:
  max_steps: 2
  micro_batch_size: 2
  lora_r: 4
  lora_alpha: 8
  target_modules: [q_proj, v_proj]
  learning_rate: 0.0005
  logging_steps: 1
"""


@pytest.mark.e2e
def test_a_diverging_training_stops_fails_its_run_and_registers_nothing(record_property):
    import dagster as dg

    from pipelines import paths
    from pipelines.launch import run_recipe
    from pipelines.lib import tracking
    from pipelines.recipe import load_recipe, recipe_path
    from pipelines.worker.divergence import DIVERGENCE_FILE

    recipe = load_recipe(recipe_path(RECIPE))
    outcome = run_recipe(recipe)

    # (a) the run failed at training_run, naming the recipe, the step and the values
    assert not outcome.success and outcome.verdict is None
    assert outcome.failure.startswith(f"training_run: recipe {RECIPE}: training diverged at step")
    match = re.search(r"training diverged at step (\d+) of (\d+) \(([^)]*\)?)\)", outcome.failure)
    assert match, outcome.failure
    step, max_steps = int(match[1]), int(match[2])
    assert step < max_steps == recipe.spec.train.max_steps  # stopped early, not at the end
    assert "grad_norm" in match[3] or "nan" in match[3] or "inf" in match[3]
    assert "marked FAILED; nothing registered" in outcome.failure
    assert "Lower train.learning_rate" in outcome.failure
    assert "Traceback" not in outcome.failure

    # the MLflow run: FAILED, with the cause, the losses up to the stop and no adapter
    client = tracking.configure_mlflow()
    run = client.get_run(re.search(r"MLflow run (\w+) marked FAILED", outcome.failure)[1])
    assert run.info.status == "FAILED"
    assert run.data.tags["rung.dagster_run_id"] == outcome.dagster_run_id
    assert run.data.tags["rung.failure"].startswith(f"training diverged at step {step}")
    losses = client.get_metric_history(run.info.run_id, "loss")
    assert max(m.step for m in losses) <= step  # no step logged after the stop
    assert client.list_artifacts(run.info.run_id, "adapter") == []

    # (b) nothing downstream, nothing registered, nothing cached for training_run
    assert {"training_run", "evaluation", "registered_adapter"}.isdisjoint(outcome.outputs)
    assert "cheap_rungs" in outcome.outputs and "training_set" in outcome.outputs
    instance = dg.DagsterInstance.get()
    materialized = {
        e.step_key
        for e in instance.all_logs(
            outcome.dagster_run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        )
    }
    assert {"training_run", "evaluation", "registered_adapter"}.isdisjoint(materialized)
    versions = client.search_model_versions(f"run_id = '{run.info.run_id}'")
    record_property("versions_wrongly_registered", len(versions))
    assert versions == []
    assert not list((paths.asset_cache_dir() / RECIPE / "training_run").glob("*.json"))
    stopped = list(paths.runs_dir().glob(f"{RECIPE}/*/training_run/out/{DIVERGENCE_FILE}"))
    assert len(stopped) == 1  # the guard's record, beside the adapter that is not used

    # (c) the recipe fixed, the next run trains; the data stages and cheap rungs are reused
    text = recipe.path.read_text()
    recipe.path.write_text(text[: text.index("train:\n")] + FIXED_TRAIN + _eval_section(text))
    fixed = run_recipe(load_recipe(recipe.path), assets=UP_TO_TRAINING)
    assert fixed.success, fixed.failure
    assert {"split", "cheap_rungs"} <= set(fixed.reused)
    trained = fixed.outputs["training_run"]
    assert client.get_run(trained.mlflow_run_id).info.status == "FINISHED"
    assert trained.steps == 2 and trained.final_train_loss is not None
    assert trained.final_train_loss == trained.final_train_loss  # finite, not NaN
    assert not (Path(trained.adapter_dir) / DIVERGENCE_FILE).exists()


def _eval_section(text: str) -> str:
    return text[text.index("eval:\n") :]
