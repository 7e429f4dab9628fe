"""Task metrics on generated answers, per row and aggregated.

Every metric is an aggregate over per-row statistics, so the paired bootstrap
can recompute it on any resample of rows (`Scorer.aggregate(stats, indices)`).
"""

from __future__ import annotations

import json
import re
import unicodedata
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

_DECODER = json.JSONDecoder()


def parse_json_strict(text: str) -> dict | None:
    """The whole answer is one JSON object (the format is the task)."""
    try:
        value = json.loads(text.strip())
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def parse_json_lenient(text: str) -> dict | None:
    """The first JSON object anywhere in the text (prose and code fences around it forgiven)."""
    for match in re.finditer(r"\{", text):
        try:
            value, _ = _DECODER.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _pairs(fields: dict | None) -> set[tuple[str, str]]:
    if not fields:
        return set()
    return {(str(k), " ".join(str(v).split()).lower()) for k, v in fields.items()}


def _f1(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return float(precision), float(recall), float(f1)


class Scorer(Protocol):
    primary: str
    higher_is_better: bool

    def row_stats(self, predictions: Sequence[str], references: Sequence[str]) -> np.ndarray: ...

    def aggregate(
        self, stats: np.ndarray, indices: np.ndarray | None = None
    ) -> dict[str, float]: ...

    def row_scores(self, stats: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class ExtractionScorer:
    """Answers are JSON objects of fields: validity, exact match, field-level P/R/F1.

    Field scores compare (key, whitespace- and case-normalized value) pairs, micro-averaged.
    `lenient_*` scores parse the first JSON object in the text instead of the whole answer.
    """

    primary: str = "field_f1"
    higher_is_better: bool = True

    # per-row columns: valid, exact, tp, fp, fn, lenient_valid, lenient_tp, lenient_fp, lenient_fn
    def row_stats(self, predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
        rows = []
        for prediction, reference in zip(predictions, references, strict=True):
            gold = _pairs(parse_json_strict(reference))
            strict, lenient = parse_json_strict(prediction), parse_json_lenient(prediction)
            got, got_lenient = _pairs(strict), _pairs(lenient)
            rows.append(
                [
                    strict is not None,
                    strict is not None and got == gold,
                    len(got & gold),
                    len(got - gold),
                    len(gold - got),
                    lenient is not None,
                    len(got_lenient & gold),
                    len(got_lenient - gold),
                    len(gold - got_lenient),
                ]
            )
        return np.array(rows, dtype=float).reshape(-1, 9)

    def aggregate(self, stats: np.ndarray, indices: np.ndarray | None = None) -> dict[str, float]:
        s = stats if indices is None else stats[indices]
        if len(s) == 0:
            return {}
        totals = s.sum(axis=0)
        precision, recall, f1 = _f1(*totals[2:5])
        _, _, lenient_f1 = _f1(*totals[6:9])
        return {
            "valid_json": float(s[:, 0].mean()),
            "exact_match": float(s[:, 1].mean()),
            "field_precision": precision,
            "field_recall": recall,
            "field_f1": f1,
            "lenient_valid_json": float(s[:, 5].mean()),
            "lenient_field_f1": lenient_f1,
        }

    def row_scores(self, stats: np.ndarray) -> np.ndarray:
        """Each row's field F1 (1.0 when both sides are empty)."""
        tp, fp, fn = stats[:, 2], stats[:, 3], stats[:, 4]
        denominator = 2 * tp + fp + fn
        return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 1.0)


def normalize_label(text: str, labels: Sequence[str]) -> str | None:
    """The label the answer names: the whole answer, case and punctuation aside."""
    cleaned = re.sub(r"[^\w\s-]", "", text).strip().lower()
    for label in labels:
        if cleaned == label.lower():
            return label
    return None


@dataclass(frozen=True)
class ClassificationScorer:
    """Answers are one label each: accuracy, macro-F1, per-class F1, confusion matrix."""

    labels: tuple[str, ...]
    primary: str = "macro_f1"
    higher_is_better: bool = True

    def row_stats(self, predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
        index = {label: i for i, label in enumerate(self.labels)}
        invalid = len(self.labels)  # an answer that names no label is its own (wrong) class
        rows = []
        for prediction, reference in zip(predictions, references, strict=True):
            predicted = normalize_label(prediction, self.labels)
            rows.append(
                [
                    index[normalize_label(reference, self.labels)],
                    index.get(predicted, invalid) if predicted else invalid,
                ]
            )
        return np.array(rows, dtype=int).reshape(-1, 2)

    def aggregate(self, stats: np.ndarray, indices: np.ndarray | None = None) -> dict[str, float]:
        from sklearn.metrics import accuracy_score, f1_score

        s = stats if indices is None else stats[indices]
        if len(s) == 0:
            return {}
        gold, predicted = s[:, 0], s[:, 1]
        known = list(range(len(self.labels)))
        per_class = f1_score(gold, predicted, labels=known, average=None, zero_division=0)
        return {
            "accuracy": float(accuracy_score(gold, predicted)),
            "macro_f1": float(
                f1_score(gold, predicted, labels=known, average="macro", zero_division=0)
            ),
            "valid_label": float((predicted < len(self.labels)).mean()),
            **{f"f1_{label}": float(v) for label, v in zip(self.labels, per_class)},
        }

    def row_scores(self, stats: np.ndarray) -> np.ndarray:
        return (stats[:, 0] == stats[:, 1]).astype(float)

    def confusion(self, stats: np.ndarray) -> dict[str, Any]:
        from sklearn.metrics import confusion_matrix

        names = [*self.labels, "(invalid)"]
        matrix = confusion_matrix(stats[:, 0], stats[:, 1], labels=list(range(len(names))))
        return {"labels": names, "matrix": matrix[: len(self.labels)].tolist()}


# Scripts written without spaces between words (kana, CJK ideographs): each character is a
# token, so a partly right answer earns partial ROUGE credit, not 0 as one long "word".
_UNSPACED = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


class UnicodeWordTokenizer:
    """ROUGE tokens in any script: rouge-score's default keeps only [a-z0-9], so a Russian
    or Japanese answer identical to its reference would score 0. Runs of letters, digits
    and combining marks (Devanagari vowel signs) of NFKC, casefolded text; Chinese and
    Japanese characters one by one."""

    def tokenize(self, text: str) -> list[str]:
        tokens: list[str] = []
        word: list[str] = []
        for char in unicodedata.normalize("NFKC", text).casefold():
            if _UNSPACED.match(char):
                tokens.extend(["".join(word), char] if word else [char])
                word = []
            elif char.isalnum() or unicodedata.category(char).startswith("M"):
                word.append(char)
            elif word:
                tokens.append("".join(word))
                word = []
        if word:
            tokens.append("".join(word))
        return tokens


@dataclass(frozen=True)
class FreeTextScorer:
    """Open answers: ROUGE-L F-measure (rouge-score, Unicode words) and chrF (sacrebleu), per
    row averaged."""

    primary: str = "rouge_l"
    higher_is_better: bool = True

    def row_stats(self, predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
        from rouge_score import rouge_scorer
        from sacrebleu.metrics import CHRF

        rouge = rouge_scorer.RougeScorer(["rougeL"], tokenizer=UnicodeWordTokenizer())
        chrf = CHRF()
        rows = [
            [
                rouge.score(reference, prediction)["rougeL"].fmeasure,
                chrf.sentence_score(prediction, [reference]).score / 100,
            ]
            for prediction, reference in zip(predictions, references, strict=True)
        ]
        return np.array(rows, dtype=float).reshape(-1, 2)

    def aggregate(self, stats: np.ndarray, indices: np.ndarray | None = None) -> dict[str, float]:
        s = stats if indices is None else stats[indices]
        if len(s) == 0:
            return {}
        return {"rouge_l": float(s[:, 0].mean()), "chrf": float(s[:, 1].mean())}

    def row_scores(self, stats: np.ndarray) -> np.ndarray:
        return stats[:, 0]


def normalize_short_answer(text: str) -> str:
    """Case, spacing, surrounding quotes and a closing '.'/'!' do not matter; a leading
    '.' or '+' does ('.bt', '+975')."""
    text = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    return text.rstrip(".!").strip("\"'`").rstrip(".!").strip()


class ShortAnswerScorer:
    """Short factual answers: exact match after normalization, and (lenient, so the base
    model is not beaten on formatting alone) whether the reference appears in the answer as
    whole words."""

    primary: str = "exact_match"
    higher_is_better: bool = True

    def row_stats(self, predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
        rows = []
        for prediction, reference in zip(predictions, references, strict=True):
            answer, wanted = normalize_short_answer(prediction), normalize_short_answer(reference)
            contains = re.search(rf"(?<![\w.+]){re.escape(wanted)}(?!\w)", answer) is not None
            rows.append([float(answer == wanted), float(bool(wanted) and contains)])
        return np.array(rows, dtype=float).reshape(-1, 2)

    def aggregate(self, stats: np.ndarray, indices: np.ndarray | None = None) -> dict[str, float]:
        s = stats if indices is None else stats[indices]
        if len(s) == 0:
            return {}
        return {"exact_match": float(s[:, 0].mean()), "contains_answer": float(s[:, 1].mean())}

    def row_scores(self, stats: np.ndarray) -> np.ndarray:
        return stats[:, 0]


def scorer_for(task: str, labels: Sequence[str] = ()) -> Scorer:
    if task == "short_answer":
        return ShortAnswerScorer()
    if task == "extraction":
        return ExtractionScorer()
    if task == "classification":
        return ClassificationScorer(labels=tuple(labels))
    if task == "free_text":
        return FreeTextScorer()
    raise ValueError(f"unknown eval.task {task!r}")


@dataclass(frozen=True)
class Interval:
    mean: float  # the observed difference
    low: float
    high: float


def paired_bootstrap(
    scorer: Scorer,
    stats_a: np.ndarray,
    stats_b: np.ndarray,
    metric: str,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """BCa confidence interval of metric(a) - metric(b), resampling the same rows for both
    (scipy.stats.bootstrap over the row indices). Where BCa is undefined (every resample
    gives the same difference, or the observed one lies outside them all) the percentile
    interval of the same resamples is used; with no spread at all, the difference itself."""
    from scipy.stats import DegenerateDataWarning, bootstrap

    n = len(stats_a)
    if n != len(stats_b) or n == 0:
        raise ValueError("paired bootstrap needs the same, non-empty rows for both candidates")
    observed = scorer.aggregate(stats_a)[metric] - scorer.aggregate(stats_b)[metric]
    if n < 2:  # nothing to resample
        return Interval(observed, observed, observed)

    def difference(indices: np.ndarray) -> float:
        return (
            scorer.aggregate(stats_a, indices)[metric] - scorer.aggregate(stats_b, indices)[metric]
        )

    options = {"vectorized": False, "confidence_level": confidence, "batch": 256}
    # a degenerate BCa interval (0/0 in its acceleration) is handled below, not warned about
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", DegenerateDataWarning)
        result = bootstrap(
            (np.arange(n),),
            difference,
            n_resamples=resamples,
            method="BCa",
            rng=np.random.default_rng(seed),
            **options,
        )
        low, high = result.confidence_interval
        if not (np.isfinite(low) and np.isfinite(high)):
            result = bootstrap(
                (np.arange(n),),
                difference,
                n_resamples=0,
                method="percentile",
                bootstrap_result=result,
                **options,
            )
            low, high = result.confidence_interval
    if not (np.isfinite(low) and np.isfinite(high)):
        low = high = observed
    return Interval(observed, float(low), float(high))


def win_rate(scorer: Scorer, stats_a: np.ndarray, stats_b: np.ndarray) -> float:
    """Share of rows where a scores above b by the task's row metric (ties count half)."""
    a, b = scorer.row_scores(stats_a), scorer.row_scores(stats_b)
    return float(np.mean(np.where(a > b, 1.0, np.where(a == b, 0.5, 0.0)))) if len(a) else 0.0
