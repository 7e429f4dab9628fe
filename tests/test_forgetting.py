import pytest

from pipelines.lib.forgetting import compare_probes, mcnemar_exact


def test_no_discordant_probe_means_no_evidence():
    assert mcnemar_exact(0, 0) == 1.0


def test_ten_losses_and_no_gain_are_unlikely_by_chance():
    assert mcnemar_exact(10, 0) == pytest.approx(2 / 2**10)  # 0.00195


def test_the_test_is_two_sided_and_symmetric():
    assert mcnemar_exact(3, 9) == pytest.approx(mcnemar_exact(9, 3))
    assert mcnemar_exact(5, 5) == pytest.approx(1.0)


def test_a_known_value():
    # 2 of 10 discordant probes: 2 * P(X <= 2), X ~ Binomial(10, 1/2) = 2 * 56 / 1024
    assert mcnemar_exact(2, 8) == pytest.approx(112 / 1024)


def test_negative_counts_are_refused():
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


def test_paired_outcomes_count_regressions_gains_and_the_rate():
    baseline = [True, True, True, True, False, False]
    tuned = [True, False, False, True, True, False]
    result = compare_probes(baseline, tuned)
    assert (result.regressions, result.gains, result.baseline_right, result.probes) == (2, 1, 4, 6)
    assert result.regression_rate == 0.5
    assert result.mcnemar_p == pytest.approx(mcnemar_exact(2, 1))
    assert result.as_report() == {
        "regressions": 2,
        "gains": 1,
        "baseline_right": 4,
        "regression_rate": 0.5,
        "mcnemar_p": result.mcnemar_p,
    }


def test_a_baseline_with_nothing_right_has_no_regression_rate():
    result = compare_probes([False, False], [True, False])
    assert result.regression_rate is None and result.gains == 1 and result.mcnemar_p == 1.0


def test_unpaired_outcomes_are_refused():
    with pytest.raises(ValueError):
        compare_probes([True], [True, False])
