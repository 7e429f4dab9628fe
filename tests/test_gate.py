from pipelines.lib.forgetting import compare_probes
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


def _paired(regressions: int, gains: int, ties_right: int):
    """Outcomes with that many regressions, gains and probes both get right."""
    baseline = [True] * regressions + [False] * gains + [True] * ties_right
    tuned = [False] * regressions + [True] * gains + [True] * ties_right
    return compare_probes(baseline, tuned)


def test_mcnemar_p_is_reported_beside_the_count_and_never_decides():
    lost = [f"capital-{i}" for i in range(10)]
    # Ten losses and no gain: p = 0.00195, yet allowed regressions let it ship.
    allowed = decide(
        GateSection(allowed_regressions=10),
        "field_f1",
        SCORES,
        GOOD_INTERVAL,
        lost,
        None,
        _paired(10, 0, 90),
    )
    assert allowed.ship and allowed.reasons[2].startswith("PASS regressions: 10")
    assert "10 lost vs 0 gained of 100 the baseline got right (rate 10.0%)" in allowed.reasons[2]
    assert "McNemar exact p = 0.00195" in allowed.reasons[2]
    # One loss against five gains: p = 0.22 says chance, but the strict default still fails.
    strict = decide(
        GateSection(), "field_f1", SCORES, GOOD_INTERVAL, ["capital-FR"], None, _paired(1, 5, 20)
    )
    assert not strict.ship and strict.reasons[2].startswith("FAIL regressions: 1")
    assert "McNemar exact p = 0.219" in strict.reasons[2] and "capital-FR" in strict.reasons[2]
    # Without the paired comparison the reason is the count alone, as before.
    plain = decide(GateSection(), "field_f1", SCORES, GOOD_INTERVAL, [], None)
    assert "McNemar" not in plain.reasons[2]


def test_a_long_list_of_regressions_is_cut_short_in_the_reason():
    lost = [f"add-{i}-1" for i in range(25)]
    verdict = decide(GateSection(), "field_f1", SCORES, GOOD_INTERVAL, lost, None)
    assert "add-9-1 and 15 more" in verdict.reasons[2] and "add-10-1" not in verdict.reasons[2]


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
