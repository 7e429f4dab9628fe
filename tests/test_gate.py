from pipelines.lib.gate import best_cheaper_rung, decide
from pipelines.lib.metrics import Interval
from pipelines.recipe import GateSection

SCORES = {"baseline": 0.10, "few_shot": 0.30, "tuned": 0.50}
GOOD_INTERVAL = Interval(mean=0.20, low=0.08, high=0.31)


def test_ship_when_every_criterion_holds():
    verdict = decide(GateSection(min_margin=0.05), "field_f1", SCORES, GOOD_INTERVAL, [], 0.05)
    assert verdict.ship and verdict.label == "SHIP"
    assert all(reason.startswith("PASS") for reason in verdict.reasons)
    assert "vs few_shot" in verdict.reasons[0]


def test_no_ship_when_the_margin_is_too_small():
    verdict = decide(GateSection(min_margin=0.25), "field_f1", SCORES, GOOD_INTERVAL, [], None)
    assert not verdict.ship and verdict.label == "NO-SHIP"
    assert verdict.reasons[0].startswith("FAIL margin")


def test_no_ship_when_the_tune_only_ties_the_cheaper_rung():
    tie = {"baseline": 0.1, "few_shot": 0.5, "tuned": 0.5}
    verdict = decide(GateSection(), "field_f1", tie, Interval(0.0, -0.1, 0.1), [], None)
    assert not verdict.ship


def test_no_ship_when_the_interval_reaches_zero():
    verdict = decide(GateSection(), "field_f1", SCORES, Interval(0.2, -0.01, 0.4), [], None)
    assert not verdict.ship
    assert [r.split()[0:2] for r in verdict.reasons][1] == ["FAIL", "interval:"]


def test_no_ship_on_a_forgetting_regression_unless_allowed():
    verdict = decide(GateSection(), "field_f1", SCORES, GOOD_INTERVAL, ["capital-FR"], None)
    assert not verdict.ship and "capital-FR" in verdict.reasons[2]
    allowed = decide(
        GateSection(allowed_regressions=1), "field_f1", SCORES, GOOD_INTERVAL, ["capital-FR"], None
    )
    assert allowed.ship


def test_overfitting_warns_by_default_and_blocks_when_asked():
    warn = decide(GateSection(max_overfit_gap=0.1), "field_f1", SCORES, GOOD_INTERVAL, [], 0.3)
    assert warn.ship and warn.reasons[-1].startswith("WARN overfitting")
    block = decide(
        GateSection(max_overfit_gap=0.1, block_on_overfit=True),
        "field_f1",
        SCORES,
        GOOD_INTERVAL,
        [],
        0.3,
    )
    assert not block.ship and block.reasons[-1].startswith("FAIL overfitting")


def test_best_cheaper_rung_prefers_the_cheapest_on_ties():
    assert best_cheaper_rung({"baseline": 0.3, "few_shot": 0.3, "tuned": 0.9}) == "baseline"
    assert best_cheaper_rung({"baseline": 0.3, "few_shot": 0.4, "tuned": 0.0}) == "few_shot"
