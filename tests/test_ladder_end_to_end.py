"""Stop at the cheapest rung that works, for real: the base model answers the held-out rows
zero-shot, few-shot and with retrieved passages; a rung that reaches eval.target ends the
run before training, with its prompt registered in MLflow's prompt registry."""

import json
from pathlib import Path

import dagster as dg
import pytest

from pipelines.launch import run_recipe
from pipelines.lib import gate, tracking
from pipelines.lib.base_model import embedded_model_dir
from pipelines.recipe import load_recipe, recipe_path

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (embedded_model_dir() / "config.json").is_file(),
        reason="embedded base model not prepared (make model)",
    ),
]
TRAINING = {"training_set", "training_run", "evaluation", "registered_adapter"}


def _stopped_early(recipe_id: str):
    recipe = load_recipe(recipe_path(recipe_id))
    outcome = run_recipe(recipe)
    assert outcome.success, outcome.failure
    cheap = outcome.outputs["cheap_rungs"]
    metric, target = cheap.primary_metric, recipe.spec.eval.target
    assert cheap.winner is not None and outcome.verdict == f"USE {cheap.winner}"
    # the winner is the cheapest rung that reached the target
    order = [r for r in gate.CHEAPER_RUNGS if r in cheap.candidates]
    reached = [r for r in order if cheap.candidates[r][metric] >= target]
    assert reached[0] == cheap.winner
    assert cheap.decision.startswith(f"USE {cheap.winner}: {metric}")
    # nothing trained: the training steps were skipped, not failed
    instance = dg.DagsterInstance.get()
    materialized = {
        e.step_key
        for e in instance.all_logs(
            outcome.dagster_run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        )
    }
    assert not materialized & TRAINING
    assert {"cheap_rungs", "registered_prompt"} <= materialized
    assert not TRAINING & set(outcome.outputs)
    # the MLflow run ends FINISHED with the verdict naming the rung; nothing registered
    client = tracking.configure_mlflow()
    run = client.get_run(cheap.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["rung.verdict"] == outcome.verdict
    assert f"{cheap.winner}.{metric}" in run.data.metrics
    prompt = outcome.outputs["registered_prompt"]
    version = client.get_prompt_version_by_alias(prompt.name, "champion")
    assert str(version.version) == prompt.version and version.tags["rung.rung"] == cheap.winner
    assert version.tags["rung.recipe_sha256"] == recipe.sha256
    return recipe, outcome, version


def test_a_low_target_stops_before_training_and_registers_the_prompt():
    recipe, outcome, version = _stopped_early("address-stop-early")
    cheap = outcome.outputs["cheap_rungs"]
    # every answer carries what it cost; the ladder shows it per candidate
    for name in cheap.candidates:
        assert cheap.candidates[name]["prompt_tokens"] > 0
        assert cheap.candidates[name]["seconds_per_answer"] > 0
    if cheap.winner == "few_shot":
        assert (
            cheap.candidates["few_shot"]["prompt_tokens"]
            > cheap.candidates["baseline"]["prompt_tokens"]
        )
        examples = [m for m in version.template if m["role"] == "assistant"]
        assert len(examples) == recipe.spec.eval.few_shot_k
    assert version.template[-1] == {"role": "user", "content": "{{question}}"}
    # a re-run reuses the cheap rungs and registers no second version
    again = run_recipe(recipe)
    assert again.verdict == outcome.verdict and "cheap_rungs" in again.reused
    assert (
        again.outputs["registered_prompt"].version == outcome.outputs["registered_prompt"].version
    )


def test_the_retrieval_rung_answers_with_passages_and_reports_recall():
    recipe, outcome, version = _stopped_early("knowledge-tiny")
    cheap = outcome.outputs["cheap_rungs"]
    assert {"baseline", "few_shot", "retrieval"} <= set(cheap.candidates)
    assert 0.0 <= cheap.retrieval["recall_at_k"] <= 1.0 and cheap.retrieval["k"] == 2
    assert cheap.retrieval["corpus"]["data/knowledge/countries.jsonl"]
    contexts = [json.loads(line) for line in Path(cheap.contexts_file).read_text().splitlines()]
    assert all(len(row["passages"]) == 2 for row in contexts)
    # the retrieval prompt is longer: it pays per request for its passages
    costs = {name: scores["prompt_tokens"] for name, scores in cheap.candidates.items()}
    assert costs["retrieval"] > costs["baseline"]
    # measured on this fixture: contains_answer 0.15 zero-shot and few-shot, 0.23 retrieval
    assert cheap.winner == "retrieval"
    assert "{{context}}" in version.template[-1]["content"]
    assert version.tags["rung.retrieval"] == "bm25, k=2"
