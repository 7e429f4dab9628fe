import json

import pandas as pd

from pipelines.lib import evaluation
from pipelines.lib.probes import Probe, all_probes
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


def test_every_candidate_answers_the_same_heldout_rows():
    requests = evaluation.build_requests(HELDOUT, TRAIN, CFG, 0, PROBES, with_champion=True)
    keys = {r["key"] for r in requests}
    for candidate in ("baseline", "few_shot", "tuned", "champion"):
        assert {f"{candidate}|heldout|h1", f"{candidate}|heldout|h2"} <= keys
    assert sum(r["key"].startswith("tuned|train|") for r in requests) == 3
    assert {"baseline|probe|p1", "tuned|probe|p2"} <= keys
    baseline = next(r for r in requests if r["key"] == "baseline|heldout|h1")
    assert baseline["messages"] == HELDOUT["messages"][0][:-1]  # the answer is never shown
    assert baseline["model"] == "base"


def test_few_shot_prompt_puts_examples_before_the_question():
    requests = evaluation.build_requests(HELDOUT, TRAIN, CFG, 0, [], with_champion=False)
    few = next(r for r in requests if r["key"] == "few_shot|heldout|h1")["messages"]
    assert [m["role"] for m in few] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert few[-1]["content"] == "5 Oak Avenue Springfield"
    shot_users = {m["content"] for m in few[1:-1] if m["role"] == "user"}
    assert shot_users <= set(TRAIN["messages"].map(lambda m: m[1]["content"]))


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


def test_score_refuses_a_tune_that_does_not_beat_few_shot():
    result = evaluation.score(HELDOUT, TRAIN, CFG, 0, PROBES, _answers(False, False), {}, {})
    assert result.report["verdict"]["label"] == "NO-SHIP"


def test_probes_are_fixed_and_check_answers():
    probes = all_probes()
    assert len(probes) == len({p.id for p in probes}) >= 30
    assert [p.id for p in probes] == [p.id for p in all_probes()]
    capital = next(p for p in probes if p.skill == "capitals")
    assert capital.passed(f"The capital is {capital.expected}.")
    assert not capital.passed("I do not know.")
    add = Probe("a", "arithmetic", "2+3?", "5", "contains")
    assert add.passed("5") and add.passed("The answer is 5.") and not add.passed("15")
    yes = Probe("y", "instructions", "Say YES", "YES", "exact")
    assert yes.passed("YES.") and not yes.passed("yes") and not yes.passed("YES, sure")


def test_run_summary_says_what_the_trainer_learned_from():
    from pipelines.lib.report import run_summary

    outputs = {
        "split": {"train_rows": 312, "heldout_rows": 48},
        "training_set": {"rows": 412, "method": "sft", "rehearsal_rows": 100},
        "training_run": {"steps": 103, "adapter_dir": "/runs/x/out", "mlflow_run_id": "abc"},
    }
    text = run_summary("r", "d", outputs)
    assert "312 / 48" in text and "412 rows (sft, 100 of them rehearsal)" in text
    assert "not registered (/runs/x/out)" in text
    outputs["training_set"] = {"rows": 30, "method": "dpo"}
    assert "30 rows (dpo)" in run_summary("r", "d", outputs)
