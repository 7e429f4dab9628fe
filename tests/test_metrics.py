import json

import numpy as np
import pytest

from pipelines.lib import metrics

GOLD = json.dumps({"AddressNumber": "9", "StreetName": "Oak", "ZipCode": "60601"})


def test_strict_and_lenient_json_parsing():
    assert metrics.parse_json_strict('{"a": "1"}') == {"a": "1"}
    assert metrics.parse_json_strict('Sure! {"a": "1"}') is None
    assert metrics.parse_json_strict("[1, 2]") is None
    assert metrics.parse_json_lenient('Sure!\n```json\n{"a": "1"}\n``` done') == {"a": "1"}
    assert metrics.parse_json_lenient('{broken {"b": 2}') == {"b": 2}
    assert metrics.parse_json_lenient("no json") is None


def test_extraction_metrics_hand_computed():
    scorer = metrics.ExtractionScorer()
    predictions = [
        GOLD,  # exact: 3 tp
        json.dumps({"AddressNumber": "9", "StreetName": "Elm"}),  # 1 tp, 1 fp, 2 fn
        'Here it is: {"ZipCode": "60601"}',  # strict invalid: 3 fn; lenient: 1 tp, 2 fn
    ]
    stats = scorer.row_stats(predictions, [GOLD] * 3)
    result = scorer.aggregate(stats)
    assert result["valid_json"] == pytest.approx(2 / 3)
    assert result["exact_match"] == pytest.approx(1 / 3)
    # strict: tp=4, fp=1, fn=5 -> P=0.8, R=4/9
    assert result["field_precision"] == pytest.approx(0.8)
    assert result["field_recall"] == pytest.approx(4 / 9)
    assert result["field_f1"] == pytest.approx(2 * 0.8 * (4 / 9) / (0.8 + 4 / 9))
    # lenient: tp=5, fp=1, fn=4 -> P=5/6, R=5/9
    assert result["lenient_valid_json"] == pytest.approx(1.0)
    assert result["lenient_field_f1"] == pytest.approx(2 * (5 / 6) * (5 / 9) / (5 / 6 + 5 / 9))


def test_field_values_compare_case_and_space_insensitively():
    scorer = metrics.ExtractionScorer()
    stats = scorer.row_stats(
        ['{"StreetName": "  oak ", "AddressNumber": "9", "ZipCode": "60601"}'], [GOLD]
    )
    assert scorer.aggregate(stats)["exact_match"] == 1.0


def test_classification_metrics_hand_computed():
    scorer = metrics.ClassificationScorer(labels=("negative", "neutral", "positive"))
    predictions = ["positive", "Negative.", "neutral", "I think positive", "positive"]
    references = ["positive", "negative", "positive", "neutral", "positive"]
    stats = scorer.row_stats(predictions, references)
    result = scorer.aggregate(stats)
    assert result["accuracy"] == pytest.approx(3 / 5)
    assert result["valid_label"] == pytest.approx(4 / 5)
    # negative: P=1 R=1 F1=1; neutral: tp=0 -> 0; positive: tp=2, fp=0, fn=1 -> F1=0.8
    assert result["f1_negative"] == pytest.approx(1.0)
    assert result["f1_neutral"] == pytest.approx(0.0)
    assert result["f1_positive"] == pytest.approx(0.8)
    assert result["macro_f1"] == pytest.approx((1 + 0 + 0.8) / 3)
    confusion = scorer.confusion(stats)
    assert confusion["labels"][-1] == "(invalid)"
    assert confusion["matrix"][1] == [0, 0, 0, 1]  # the neutral row went to (invalid)
    assert confusion["matrix"][2] == [0, 1, 2, 0]


def test_free_text_metrics():
    scorer = metrics.FreeTextScorer()
    stats = scorer.row_stats(
        ["the cat sat on the mat", "completely different"],
        ["the cat sat on the mat", "the cat sat"],
    )
    result = scorer.aggregate(stats)
    assert stats[0, 0] == pytest.approx(1.0) and stats[0, 1] == pytest.approx(1.0)
    assert stats[1, 0] == pytest.approx(0.0)
    assert 0.0 < result["chrf"] < 1.0 and result["rouge_l"] == pytest.approx(0.5)


def test_free_text_scores_answers_in_any_script():
    scorer = metrics.FreeTextScorer()
    references = ["東京は日本の首都です", "Столица России — Москва", "भारत की राजधानी दिल्ली है"]
    identical = scorer.row_stats(references, references)
    assert identical[:, 0] == pytest.approx([1.0, 1.0, 1.0])
    wrong = scorer.row_stats(
        ["大阪は日本の都市です", "Столица Франции — Париж", "नेपाल की राजधानी काठमांडू है"],
        references,
    )
    assert all(0.0 < score < 1.0 for score in wrong[:, 0])  # partial credit, not all-or-nothing
    unrelated = scorer.row_stats(["猫", "кошка", "बिल्ली"], references)
    assert unrelated[:, 0] == pytest.approx([0.0, 0.0, 0.0])


def test_unicode_tokens_casefold_and_split_unspaced_scripts():
    tokenizer = metrics.UnicodeWordTokenizer()
    assert tokenizer.tokenize("Москва, МОСКВА!") == ["москва", "москва"]
    assert tokenizer.tokenize("東京abc") == ["東", "京", "abc"]
    assert tokenizer.tokenize("ＡＢＣ１") == ["abc1"]  # NFKC folds full-width forms


def test_paired_bootstrap_brackets_the_observed_difference():
    scorer = metrics.ClassificationScorer(labels=("no", "yes"))
    references = ["yes", "no"] * 30
    better = scorer.row_stats(references, references)  # always right
    worse = scorer.row_stats(["yes"] * 60, references)  # half right
    interval = metrics.paired_bootstrap(scorer, better, worse, "accuracy", resamples=300)
    assert interval.mean == pytest.approx(0.5)
    assert 0.3 < interval.low < interval.mean < interval.high < 0.7
    same = metrics.paired_bootstrap(scorer, worse, worse, "accuracy", resamples=100)
    assert same.low == same.high == same.mean == 0.0


def test_bootstrap_is_deterministic_and_needs_paired_rows():
    scorer = metrics.ExtractionScorer()
    a = scorer.row_stats([GOLD, "{}", GOLD], [GOLD] * 3)
    b = scorer.row_stats(["{}", "{}", GOLD], [GOLD] * 3)
    assert metrics.paired_bootstrap(scorer, a, b, "field_f1") == metrics.paired_bootstrap(
        scorer, a, b, "field_f1"
    )
    with pytest.raises(ValueError, match="same, non-empty rows"):
        metrics.paired_bootstrap(scorer, a, b[:2], "field_f1")
    assert metrics.scorer_for("extraction").primary == "field_f1"
    with pytest.raises(ValueError, match="unknown eval.task"):
        metrics.scorer_for("poetry")


class MeanScorer:
    """Hand-made per-row scores; the metric is their mean."""

    primary = "score"
    higher_is_better = True

    def aggregate(self, stats: np.ndarray, indices: np.ndarray | None = None) -> dict:
        return {"score": float((stats if indices is None else stats[indices]).mean())}


def test_bca_interval_of_a_clear_paired_improvement_lies_above_zero():
    rng = np.random.default_rng(7)
    worse = rng.uniform(0.2, 0.8, 200)  # rows differ a lot ...
    better = worse + rng.normal(0.1, 0.05, 200)  # ... the paired gain much less
    interval = metrics.paired_bootstrap(MeanScorer(), better, worse, "score", resamples=2000)
    assert interval.mean == pytest.approx(float(np.mean(better - worse)))
    assert 0 < interval.low < interval.mean < interval.high
    # resampling the same rows for both cancels the row-to-row spread (sd 0.17)
    assert interval.high - interval.low < 0.03


def test_degenerate_bootstrap_gives_the_difference_itself():
    scores = np.array([0.0, 0.5, 1.0, 0.5, 0.0, 1.0])
    same = metrics.paired_bootstrap(MeanScorer(), scores, scores, "score", resamples=200)
    assert same == metrics.Interval(0.0, 0.0, 0.0)
    shifted = metrics.paired_bootstrap(MeanScorer(), scores + 0.25, scores, "score")
    assert shifted.mean == pytest.approx(0.25)
    assert shifted.low == pytest.approx(0.25) and shifted.high == pytest.approx(0.25)
    one_row = metrics.paired_bootstrap(MeanScorer(), scores[:1] + 1, scores[:1], "score")
    assert one_row == metrics.Interval(1.0, 1.0, 1.0)


def test_bca_interval_is_deterministic_per_seed():
    rng = np.random.default_rng(3)
    a, b = rng.uniform(size=50), rng.uniform(size=50)
    first = metrics.paired_bootstrap(MeanScorer(), a, b, "score", resamples=500, seed=1)
    assert first == metrics.paired_bootstrap(MeanScorer(), a, b, "score", resamples=500, seed=1)
    assert all(np.isfinite([first.low, first.high])) and first.low < first.mean < first.high


def test_row_scores_and_win_rate():
    scorer = metrics.ExtractionScorer()
    perfect = scorer.row_stats([GOLD, GOLD], [GOLD, GOLD])
    half = scorer.row_stats([GOLD, '{"AddressNumber": "9"}'], [GOLD, GOLD])
    assert list(scorer.row_scores(half)) == pytest.approx([1.0, 0.5])
    assert metrics.win_rate(scorer, perfect, half) == pytest.approx(0.75)  # one tie, one win
    assert metrics.win_rate(scorer, half, perfect) == pytest.approx(0.25)
    labels = metrics.ClassificationScorer(labels=("no", "yes"))
    assert list(labels.row_scores(labels.row_stats(["yes", "no"], ["yes", "yes"]))) == [1.0, 0.0]


def test_short_answers_match_exactly_after_normalization_and_leniently_as_words():
    from pipelines.lib.metrics import ShortAnswerScorer, scorer_for

    scorer = scorer_for("short_answer")
    assert isinstance(scorer, ShortAnswerScorer)
    predictions = ["btn", "The code is BTN.", ".bt", "+976", '"Asia".', "Asian", "bt"]
    references = ["BTN", "BTN", ".bt", "+975", "Asia", "Asia", ".bt"]
    stats = scorer.row_stats(predictions, references)
    assert stats[:, 0].tolist() == [1, 0, 1, 0, 1, 0, 0]  # exact: case, quotes, '.' at the end
    assert stats[:, 1].tolist() == [1, 1, 1, 0, 1, 0, 0]  # contained as whole words only
    assert scorer.aggregate(stats) == {"exact_match": 3 / 7, "contains_answer": 4 / 7}
