"""Pipeline slices, one per training method: raw data -> training_set materialized by
Dagster with a stand-in for the trainer environment (no model is loaded), checking the
wiring: what each method asks the models, and what it hands the trainer."""

import json
from pathlib import Path

import dagster as dg
import pytest

from pipelines.launch import ensure_dagster_home
from pipelines.lib.base_model import embedded_model_dir

pytestmark = pytest.mark.skipif(
    not (embedded_model_dir() / "config.json").is_file(),
    reason="embedded base model not prepared (make model)",
)
SLICE = ["base_model", "raw_data", "cleaned_data", "split", "cheap_rungs", "training_set"]
BASE_ANSWER = "I am not sure."
TEACHER_ANSWER = '{"PlaceName": "Springfield"}'


class StandInWorker(dg.PipesSubprocessClient):
    """Answers the inference worker's requests without a model and remembers them."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict] = []

    def run(self, *, context, command, extras, env=None, **kwargs):
        assert command[-1] == "pipelines.worker.evaluate", command  # only inference here
        requests = [
            json.loads(line) for line in Path(extras["requests_file"]).read_text().splitlines()
        ]
        self.calls.append({"requests": requests, "adapters": extras["adapters"]})
        answers = [
            {"key": r["key"], "output": TEACHER_ANSWER if r["model"] == "teacher" else BASE_ANSWER}
            for r in requests
        ]
        Path(extras["answers_file"]).write_text("".join(json.dumps(a) + "\n" for a in answers))
        Path(extras["result_file"]).write_text(json.dumps({"losses": {}, "timings": {}}))


def materialize_slice(recipe_id: str) -> tuple[dg.ExecuteInProcessResult, StandInWorker]:
    from pipelines.definitions import defs

    ensure_dagster_home()
    worker = StandInWorker()
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks],
        partition_key=recipe_id,
        resources={**defs.resources, "pipes_subprocess_client": worker},  # a stand-in worker
        selection=SLICE,
        instance=dg.DagsterInstance.get(),
        tags={"rung/cache": "off"},
    )
    assert result.success
    # first the cheap rungs (the base model, before training), then the training set
    cheap, *rest = worker.calls
    assert cheap["adapters"] == {}
    assert {r["key"].split("|")[0] for r in cheap["requests"]} == {"baseline", "few_shot"}
    assert result.output_for_node("cheap_rungs").winner is None  # no eval.target: train
    worker.calls = rest
    return result, worker


def rows(value) -> list[dict]:
    return [json.loads(line) for line in Path(value.file).read_text().splitlines()]


def test_sft_with_rehearsal_asks_the_base_model_only_the_rehearsal_prompts():
    result, worker = materialize_slice("address-no-ship")
    (call,) = worker.calls
    assert call["adapters"] == {} and len(call["requests"]) == 4
    assert {r["model"] for r in call["requests"]} == {"base"}
    assert all(r["messages"][0]["role"] == "user" for r in call["requests"])  # no system prompt
    learned, split = result.output_for_node("training_set"), result.output_for_node("split")
    assert learned.method == "sft" and learned.rehearsal_rows == 4
    assert learned.rows == split.train_rows + 4
    rehearsed = [r for r in rows(learned) if r["id"].startswith("rehearsal-")]
    assert [r["messages"][-1]["content"] for r in rehearsed] == [BASE_ANSWER] * 4


def test_on_policy_dpo_rejects_the_base_models_own_answers():
    result, worker = materialize_slice("address-dpo-tiny")
    split, pairs = result.output_for_node("split"), result.output_for_node("training_set")
    (call,) = worker.calls
    assert len(call["requests"]) == split.train_rows and call["adapters"] == {}
    assert pairs.method == "dpo" and pairs.rows == split.train_rows  # the base is always wrong
    assert {r["rejected"] for r in rows(pairs)} == {BASE_ANSWER}
    assert pairs.length_bias["pairs"] == pairs.rows


def test_distillation_labels_every_training_prompt_with_the_teacher():
    result, worker = materialize_slice("address-distill-stand-in")
    split, learned = result.output_for_node("split"), result.output_for_node("training_set")
    (call,) = worker.calls
    assert set(call["adapters"]) == {"teacher"}
    assert {r["model"] for r in call["requests"]} == {"teacher"}
    assert learned.method == "distill" and learned.teacher["kind"] == "adapter"
    records = rows(learned)
    assert len(records) == split.train_rows
    assert {r["messages"][-1]["content"] for r in records} == {TEACHER_ANSWER}
    assert all(r["provenance"]["teacher_kind"] == "adapter" for r in records)
