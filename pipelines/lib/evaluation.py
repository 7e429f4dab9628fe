"""The adaptation-ladder evaluation: what to ask each candidate, and how to score it.

Candidates answer the same held-out rows with the same scoring:
  baseline  the base model with the recipe's prompt, zero-shot
  few_shot  the base model with k training examples before the question
  tuned     the base model + the trained adapter, the baseline's prompt
  champion  the registry's current champion adapter, when there is one
  teacher   a distilled student's teacher, for the cost/quality trade
The tuned model also answers a sample of training rows (overfitting gap), and
baseline and tuned answer the forgetting probes (regressions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipelines.lib import gate as gates
from pipelines.lib.dataset import unit_hash
from pipelines.lib.metrics import Scorer, paired_bootstrap, scorer_for, win_rate
from pipelines.lib.probes import Probe
from pipelines.recipe import EvalSection

BASE, TUNED, CHAMPION, TEACHER = "base", "tuned", "champion", "teacher"  # worker model names
CANDIDATES = ("baseline", "few_shot", "tuned", "champion", "teacher")
PROBE_MAX_NEW_TOKENS = 24
# Candidate metrics that measure the machine, not the model: reported, never hashed.
MACHINE_METRICS = ("new_tokens_per_s",)


def _question(messages: list[dict]) -> list[dict]:
    return messages[:-1]


def _answer(messages: list[dict]) -> str:
    return messages[-1]["content"]


def few_shot_messages(messages: list[dict], shots: list[list[dict]]) -> list[dict]:
    """System prompt, then each shot as a user/assistant exchange, then the question."""
    system = [m for m in messages if m["role"] == "system"]
    turns = [m for shot in shots for m in shot if m["role"] != "system"]
    question = [m for m in messages[:-1] if m["role"] != "system"]
    return system + turns + question


def select_shots(
    train: pd.DataFrame, heldout: pd.DataFrame, cfg: EvalSection, seed: int
) -> list[list[list[dict]]]:
    """For each held-out row, the k training conversations shown as examples."""
    k = min(cfg.few_shot_k, len(train))
    if cfg.few_shot_selection == "fixed":
        order = (
            train["id"].map(lambda key: unit_hash(seed, "shots:" + key)).sort_values(kind="stable")
        )
        fixed = [train.loc[i, "messages"] for i in order.index[:k]]
        return [fixed] * len(heldout)
    from sklearn.feature_extraction.text import TfidfVectorizer

    def user_text(messages: list[dict]) -> str:
        return " ".join(m["content"] for m in messages if m["role"] == "user")

    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4))
    train_matrix = vectorizer.fit_transform(train["messages"].map(user_text))
    query_matrix = vectorizer.transform(heldout["messages"].map(user_text))
    similarity = (query_matrix @ train_matrix.T).toarray()
    nearest = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    return [[train["messages"].iloc[j] for j in row] for row in nearest]


def sample_rows(frame: pd.DataFrame, count: int, seed: int, salt: str) -> pd.DataFrame:
    order = frame["id"].map(lambda key: unit_hash(seed, salt + key)).sort_values(kind="stable")
    return frame.loc[order.index[:count]].reset_index(drop=True)


def build_requests(
    heldout: pd.DataFrame,
    train: pd.DataFrame,
    cfg: EvalSection,
    seed: int,
    probes: list[Probe],
    with_champion: bool,
    with_teacher: bool = False,
) -> list[dict]:
    """Every generation the evaluation needs, keyed 'candidate|set|row id'."""
    requests: list[dict] = []

    def ask(
        candidate: str,
        model: str,
        where: str,
        key: str,
        messages: list[dict],
        max_new_tokens: int = cfg.max_new_tokens,
    ) -> None:
        requests.append(
            {
                "key": f"{candidate}|{where}|{key}",
                "model": model,
                "messages": messages,
                "max_new_tokens": max_new_tokens,
            }
        )

    shots = select_shots(train, heldout, cfg, seed)
    for row, row_shots in zip(heldout.itertuples(index=False), shots):
        question = _question(row.messages)
        ask("baseline", BASE, "heldout", row.id, question)
        ask("few_shot", BASE, "heldout", row.id, few_shot_messages(row.messages, row_shots))
        ask("tuned", TUNED, "heldout", row.id, question)
        if with_champion:
            ask("champion", CHAMPION, "heldout", row.id, question)
        if with_teacher:
            ask("teacher", TEACHER, "heldout", row.id, question)
    for row in sample_rows(train, cfg.train_sample_rows, seed, "overfit:").itertuples(index=False):
        ask("tuned", TUNED, "train", row.id, _question(row.messages))
    for probe in probes:
        for candidate, model in (("baseline", BASE), ("tuned", TUNED)):
            ask(candidate, model, "probe", probe.id, probe.messages(), PROBE_MAX_NEW_TOKENS)
    return requests


@dataclass(frozen=True)
class Evaluation:
    report: dict[str, Any]  # JSON-ready: candidates, interval, probes, overfitting, verdict
    predictions: pd.DataFrame  # one row per (candidate, set, row): prompt, reference, output


def labels_for(cfg: EvalSection, heldout: pd.DataFrame) -> list[str]:
    return cfg.labels or sorted({_answer(m) for m in heldout["messages"]})


def score(
    heldout: pd.DataFrame,
    train: pd.DataFrame,
    cfg: EvalSection,
    seed: int,
    probes: list[Probe],
    answers: dict[str, str],
    losses: dict[str, float],
    timings: dict[str, dict],
    parameters: dict[str, int] | None = None,
) -> Evaluation:
    """Score every candidate, bootstrap the primary difference, count regressions, decide."""
    parameters = parameters or {}
    scorer: Scorer = scorer_for(cfg.task, labels_for(cfg, heldout))
    metric = cfg.primary_metric
    references = [_answer(m) for m in heldout["messages"]]
    candidates = [c for c in CANDIDATES if f"{c}|heldout|{heldout['id'].iloc[0]}" in answers]

    stats, metrics, prediction_rows = {}, {}, []
    for candidate in candidates:
        outputs = [answers[f"{candidate}|heldout|{key}"] for key in heldout["id"]]
        stats[candidate] = scorer.row_stats(outputs, references)
        metrics[candidate] = scorer.aggregate(stats[candidate])
        prediction_rows += [
            {
                "candidate": candidate,
                "set": "heldout",
                "id": key,
                "prompt": _question(m)[-1]["content"],
                "reference": ref,
                "output": out,
            }
            for key, m, ref, out in zip(heldout["id"], heldout["messages"], references, outputs)
        ]
    for model, loss in losses.items():
        name = {BASE: "baseline", TUNED: "tuned", CHAMPION: "champion", TEACHER: "teacher"}[model]
        metrics.setdefault(name, {}).update(heldout_loss=loss, heldout_perplexity=math.exp(loss))

    scores = {c: metrics[c][metric] for c in candidates}
    rung = gates.best_cheaper_rung(scores)
    interval = paired_bootstrap(
        scorer,
        stats["tuned"],
        stats[rung],
        metric,
        resamples=cfg.bootstrap_resamples,
        confidence=cfg.confidence,
    )

    train_rows = sample_rows(train, cfg.train_sample_rows, seed, "overfit:")
    overfit_gap = None
    if len(train_rows):
        outputs = [answers[f"tuned|train|{key}"] for key in train_rows["id"]]
        train_refs = [_answer(m) for m in train_rows["messages"]]
        train_score = scorer.aggregate(scorer.row_stats(outputs, train_refs))[metric]
        overfit_gap = train_score - scores["tuned"]
        prediction_rows += [
            {
                "candidate": "tuned",
                "set": "train",
                "id": key,
                "prompt": _question(m)[-1]["content"],
                "reference": ref,
                "output": out,
            }
            for key, m, ref, out in zip(
                train_rows["id"], train_rows["messages"], train_refs, outputs
            )
        ]

    probe_results = (
        {
            c: {p.id: p.passed(answers[f"{c}|probe|{p.id}"]) for p in probes}
            for c in ("baseline", "tuned")
        }
        if probes
        else {}
    )
    regressions = [
        p.id for p in probes if probe_results["baseline"][p.id] and not probe_results["tuned"][p.id]
    ]
    for candidate, passed in probe_results.items():
        metrics[candidate]["probe_accuracy"] = float(np.mean(list(passed.values())))
        prediction_rows += [
            {
                "candidate": candidate,
                "set": "probe",
                "id": p.id,
                "prompt": p.question,
                "reference": p.expected,
                "output": answers[f"{candidate}|probe|{p.id}"],
            }
            for p in probes
        ]

    for candidate in candidates:
        if candidate != "baseline":
            metrics[candidate]["win_rate_vs_baseline"] = win_rate(
                scorer, stats[candidate], stats["baseline"]
            )
        model = {"baseline": BASE, "few_shot": BASE}.get(candidate, candidate)
        timing = timings.get(model)
        if timing and timing.get("seconds"):
            metrics[candidate]["new_tokens_per_s"] = timing["new_tokens"] / timing["seconds"]
        if model in parameters:
            metrics[candidate]["parameters"] = float(parameters[model])

    verdict = gates.decide(cfg.gate, metric, scores, interval, regressions, overfit_gap)
    report: dict[str, Any] = {
        "task": cfg.task,
        "primary_metric": metric,
        "candidates": metrics,
        "best_cheaper_rung": rung,
        "interval": {
            "versus": rung,
            "mean": interval.mean,
            "low": interval.low,
            "high": interval.high,
            "confidence": cfg.confidence,
        },
        "regressions": regressions,
        "probes": {c: sum(v.values()) for c, v in probe_results.items()},
        "probe_count": len(probes),
        "overfit_gap": overfit_gap,
        "timings": timings,
        "verdict": {"ship": verdict.ship, "label": verdict.label, "reasons": verdict.reasons},
        "heldout_rows": len(heldout),
    }
    if cfg.task == "classification":
        report["confusion"] = {c: scorer.confusion(stats[c]) for c in candidates}  # type: ignore[attr-defined]
    return Evaluation(report=report, predictions=pd.DataFrame(prediction_rows))
