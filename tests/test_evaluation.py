import json

import pandas as pd

from pipelines.lib import evaluation
from pipelines.lib.probes import Probe
from pipelines.recipe import EvalSection

SYSTEM = {"role": "system", "content": "Extract."}


def conversation(address: str, fields: dict) -> list[dict]:
    return [
        SYSTEM,
        {"role": "user", "content": address},
        {"role": "assistant", "content": json.dumps(fields)},
    ]


def frame(rows: list[tuple[str, str, dict]]) -> pd.DataFrame:
    return pd.DataFrame([{"id": i, "messages": conversation(a, f)} for i, a, f in rows])


TRAIN = frame(
    [(f"t{i}", f"{i} Main Street", {"AddressNumber": str(i)}) for i in range(6)]
    + [("t-oak", "77 Oak Avenue Springfield", {"AddressNumber": "77"})]
)
HELDOUT = frame(
    [
        ("h1", "5 Oak Avenue Springfield", {"AddressNumber": "5"}),
        ("h2", "9 Main Street", {"AddressNumber": "9"}),
    ]
)
PROBES = [
    Probe("p1", "arithmetic", "What is 2 + 3?", "5", "contains"),
    Probe("p2", "instructions", "Say YES.", "YES", "exact"),
]
CFG = EvalSection(task="extraction", few_shot_k=2, train_sample_rows=3)


def _all_requests(probes, with_champion, contexts=None):
    """The cheap rungs' requests (before training) and the tune's (after), together."""
    return evaluation.build_cheap_requests(
        HELDOUT, TRAIN, CFG, 0, probes, contexts
    ) + evaluation.build_tuned_requests(
        HELDOUT, TRAIN, CFG, 0, probes, with_champion=with_champion, contexts=contexts
    )


def test_every_candidate_answers_the_same_heldout_rows():
    requests = _all_requests(PROBES, with_champion=True)
    keys = {r["key"] for r in requests}
    for candidate in ("baseline", "few_shot", "tuned", "champion"):
        assert {f"{candidate}|heldout|h1", f"{candidate}|heldout|h2"} <= keys
    assert sum(r["key"].startswith("tuned|train|") for r in requests) == 3
    assert {"baseline|probe|p1", "tuned|probe|p2"} <= keys
    baseline = next(r for r in requests if r["key"] == "baseline|heldout|h1")
    assert baseline["messages"] == HELDOUT["messages"][0][:-1]  # the answer is never shown
    assert baseline["model"] == "base"


def test_few_shot_prompt_puts_examples_before_the_question():
    requests = _all_requests([], with_champion=False)
    few = next(r for r in requests if r["key"] == "few_shot|heldout|h1")["messages"]
    assert [m["role"] for m in few] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert few[-1]["content"] == "5 Oak Avenue Springfield"
    shot_users = {m["content"] for m in few[1:-1] if m["role"] == "user"}
    assert shot_users <= set(TRAIN["messages"].map(lambda m: m[1]["content"]))


def test_the_base_model_is_asked_before_training_and_the_adapters_after():
    contexts = {key: [{"role": "user", "content": f"ctx {key}"}] for key in HELDOUT["id"]}
    cheap = evaluation.build_cheap_requests(HELDOUT, TRAIN, CFG, 0, PROBES, contexts)
    tuned = evaluation.build_tuned_requests(
        HELDOUT, TRAIN, CFG, 0, PROBES, with_champion=False, contexts=contexts
    )
    assert {r["model"] for r in cheap} == {"base"} and "base" not in {r["model"] for r in tuned}
    by_key = {r["key"]: r for r in cheap + tuned}
    assert by_key["retrieval|heldout|h1"]["messages"] == contexts["h1"]
    assert by_key["tuned_retrieval|heldout|h1"]["messages"] == contexts["h1"]
    assert by_key["tuned_retrieval|heldout|h1"]["model"] == "tuned"
    assert {r["key"].split("|")[0] for r in cheap} == {"baseline", "few_shot", "retrieval"}


def test_similar_selection_picks_the_nearest_training_rows():
    cfg = CFG.model_copy(update={"few_shot_k": 1, "few_shot_selection": "similar"})
    (shots_h1,), (shots_h2,) = evaluation.select_shots(TRAIN, HELDOUT, cfg, seed=0)
    assert shots_h1[1]["content"] == "77 Oak Avenue Springfield"
    assert "Main Street" in shots_h2[1]["content"]


def _answers(tuned_right: bool, probe_regression: bool) -> dict[str, str]:
    answers = {}
    for row in HELDOUT.itertuples():
        gold = row.messages[-1]["content"]
        answers[f"baseline|heldout|{row.id}"] = "I cannot say"
        answers[f"few_shot|heldout|{row.id}"] = '{"AddressNumber": "0"}'
        answers[f"tuned|heldout|{row.id}"] = gold if tuned_right else "{}"
    for row in evaluation.sample_rows(TRAIN, 3, 0, "overfit:").itertuples():
        answers[f"tuned|train|{row.id}"] = row.messages[-1]["content"]
    answers.update(
        {
            "baseline|probe|p1": "5",
            "baseline|probe|p2": "YES",
            "tuned|probe|p1": "7" if probe_regression else "5",
            "tuned|probe|p2": "YES",
        }
    )
    return answers


def test_score_ships_a_tune_that_beats_the_ladder():
    result = evaluation.score(
        HELDOUT, TRAIN, CFG, 0, PROBES, _answers(True, False), {"base": 2.0, "tuned": 0.5}, {}
    )
    report = result.report
    assert report["candidates"]["tuned"]["field_f1"] == 1.0
    assert report["candidates"]["baseline"]["heldout_loss"] == 2.0
    assert report["best_cheaper_rung"] in ("baseline", "few_shot")
    assert report["overfit_gap"] == 0.0 and report["regressions"] == []
    assert report["forgetting"]["regressions"] == 0 and report["forgetting"]["mcnemar_p"] == 1.0
    assert report["verdict"]["label"] == "SHIP"
    assert set(result.predictions["set"]) == {"heldout", "train", "probe"}
    # Same inputs, same report: the evaluation is deterministic.
    again = evaluation.score(
        HELDOUT, TRAIN, CFG, 0, PROBES, _answers(True, False), {"base": 2.0, "tuned": 0.5}, {}
    )
    assert again.report == report


def test_score_refuses_a_tune_that_forgets():
    result = evaluation.score(HELDOUT, TRAIN, CFG, 0, PROBES, _answers(True, True), {}, {})
    assert result.report["regressions"] == ["p1"]
    assert result.report["verdict"]["label"] == "NO-SHIP"
    forgetting = result.report["forgetting"]
    assert {k: forgetting[k] for k in ("regressions", "gains", "baseline_right")} == {
        "regressions": 1,
        "gains": 0,
        "baseline_right": 2,
    }
    assert forgetting["regression_rate"] == 0.5 and forgetting["mcnemar_p"] == 1.0
    assert forgetting["by_skill"]["arithmetic"]["regressions"] == 1
    assert forgetting["by_skill"]["instructions"]["regressions"] == 0
    regressions_reason = result.report["verdict"]["reasons"][2]
    assert regressions_reason.startswith("FAIL regressions: 1")
    assert "McNemar exact p = 1" in regressions_reason


def test_score_without_probes_reports_no_forgetting():
    result = evaluation.score(HELDOUT, TRAIN, CFG, 0, [], _answers(True, False), {}, {})
    assert result.report["forgetting"] is None and result.report["probe_count"] == 0
    assert result.report["verdict"]["label"] == "SHIP"


def test_score_refuses_a_tune_that_does_not_beat_few_shot():
    result = evaluation.score(HELDOUT, TRAIN, CFG, 0, PROBES, _answers(False, False), {}, {})
    assert result.report["verdict"]["label"] == "NO-SHIP"


def test_run_summary_says_what_the_trainer_learned_from():
    from types import SimpleNamespace as Value

    from pipelines.lib.run_summary import run_summary

    outputs = {
        "split": Value(train_rows=312, heldout_rows=48),
        "training_set": Value(rows=412, method="sft", rehearsal_rows=100),
        "training_run": Value(
            steps=103, adapter_dir="/runs/x/out", mlflow_run_id="abc", final_train_loss=0.2
        ),
        "evaluation": None,
    }
    text = run_summary("r", "d", outputs, ["cleaned_data"])
    assert "312 / 48" in text and "412 rows (sft, 100 of them rehearsal)" in text
    assert "not registered: the run stopped (/runs/x/out)" in text
    assert "reused from cache      cleaned_data" in text
    outputs["training_set"] = Value(rows=30, method="dpo", rehearsal_rows=0)
    assert "30 rows (dpo)" in run_summary("r", "d", outputs)
