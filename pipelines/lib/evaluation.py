"""The adaptation-ladder evaluation: what to ask each candidate, and how to score it.

Candidates answer the same held-out rows with the same scoring:
  baseline         the base model with the recipe's prompt, zero-shot
  few_shot         the base model with k training examples before the question
  retrieval        the base model with the top-k corpus passages (eval.retrieval)
  tuned            the base model + the trained adapter, the baseline's prompt
  tuned_retrieval  the trained adapter with the same passages
  champion         the registry's current champion adapter, when there is one
  teacher          a distilled student's teacher, for the cost/quality trade
The first three need no training and are asked first (the cheap_rungs asset: when one
reaches eval.target, nothing is trained). The tuned model also answers a sample of
training rows (overfitting gap), and baseline and tuned answer the forgetting probes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipelines.lib import gate as gates
from pipelines.lib.dataset import unit_hash
from pipelines.lib.forgetting import Forgetting, compare_probes
from pipelines.lib.metrics import Scorer, paired_bootstrap, scorer_for, win_rate
from pipelines.lib.probes import Probe, family_counts
from pipelines.recipe import EvalSection

BASE, TUNED, CHAMPION, TEACHER = "base", "tuned", "champion", "teacher"  # worker model names
CANDIDATES = (
    "baseline",
    "few_shot",
    "retrieval",
    "tuned",
    "tuned_retrieval",
    "champion",
    "teacher",
)
# The model that answers for each candidate (the retrieval rungs differ only in the prompt).
CANDIDATE_MODEL = {
    "baseline": BASE,
    "few_shot": BASE,
    "retrieval": BASE,
    "tuned": TUNED,
    "tuned_retrieval": TUNED,
    "champion": CHAMPION,
    "teacher": TEACHER,
}
PROBE_MAX_NEW_TOKENS = 24
# Candidate metrics that measure the machine, not the model: reported, never hashed.
MACHINE_METRICS = ("new_tokens_per_s", "seconds_per_answer")


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


class _Requests(list):
    """Generation requests keyed 'candidate|set|row id'."""

    def ask(self, candidate: str, model: str, where: str, key: str, messages, max_new_tokens):
        self.append(
            {
                "key": f"{candidate}|{where}|{key}",
                "model": model,
                "messages": messages,
                "max_new_tokens": max_new_tokens,
            }
        )


def build_cheap_requests(
    heldout: pd.DataFrame,
    train: pd.DataFrame,
    cfg: EvalSection,
    seed: int,
    probes: list[Probe],
    contexts: dict[str, list[dict]] | None = None,
) -> list[dict]:
    """What the base model answers before any training: every held-out row zero-shot,
    few-shot and (with `contexts`, row id -> retrieval messages) with passages; the probes."""
    requests = _Requests()
    shots = select_shots(train, heldout, cfg, seed)
    for row, row_shots in zip(heldout.itertuples(index=False), shots):
        question, limit = _question(row.messages), cfg.max_new_tokens
        requests.ask("baseline", BASE, "heldout", row.id, question, limit)
        few_shot = few_shot_messages(row.messages, row_shots)
        requests.ask("few_shot", BASE, "heldout", row.id, few_shot, limit)
        if contexts:
            requests.ask("retrieval", BASE, "heldout", row.id, contexts[row.id], limit)
    for probe in probes:
        requests.ask("baseline", BASE, "probe", probe.id, probe.messages(), PROBE_MAX_NEW_TOKENS)
    return list(requests)


def build_tuned_requests(
    heldout: pd.DataFrame,
    train: pd.DataFrame,
    cfg: EvalSection,
    seed: int,
    probes: list[Probe],
    with_champion: bool,
    with_teacher: bool = False,
    contexts: dict[str, list[dict]] | None = None,
) -> list[dict]:
    """What the trained adapter (and the champion, a teacher) answer: the held-out rows
    (with passages too when the retrieval rung is on), a training sample, the probes."""
    requests, limit = _Requests(), cfg.max_new_tokens
    for row in heldout.itertuples(index=False):
        question = _question(row.messages)
        requests.ask("tuned", TUNED, "heldout", row.id, question, limit)
        if contexts:
            requests.ask("tuned_retrieval", TUNED, "heldout", row.id, contexts[row.id], limit)
        if with_champion:
            requests.ask("champion", CHAMPION, "heldout", row.id, question, limit)
        if with_teacher:
            requests.ask("teacher", TEACHER, "heldout", row.id, question, limit)
    for row in sample_rows(train, cfg.train_sample_rows, seed, "overfit:").itertuples(index=False):
        requests.ask("tuned", TUNED, "train", row.id, _question(row.messages), limit)
    for probe in probes:
        requests.ask("tuned", TUNED, "probe", probe.id, probe.messages(), PROBE_MAX_NEW_TOKENS)
    return list(requests)


def score_cheap_rungs(
    heldout: pd.DataFrame,
    cfg: EvalSection,
    answers: dict[str, str],
    costs: dict[str, dict[str, float]] | None = None,
) -> dict[str, dict[str, float]]:
    """The metrics of the candidates that need no training, on the held-out rows."""
    scorer = scorer_for(cfg.task, labels_for(cfg, heldout))
    first = heldout["id"].iloc[0]
    present = [c for c in gates.CHEAPER_RUNGS if f"{c}|heldout|{first}" in answers]
    _, metrics, _ = _score_heldout(heldout, present, answers, scorer)
    for candidate, cost in candidate_costs(heldout, present, costs or {}).items():
        metrics[candidate].update(cost)
    return metrics


@dataclass(frozen=True)
class Evaluation:
    report: dict[str, Any]  # JSON-ready: candidates, interval, probes, overfitting, verdict
    predictions: pd.DataFrame  # one row per (candidate, set, row): prompt, reference, output


def labels_for(cfg: EvalSection, heldout: pd.DataFrame) -> list[str]:
    return cfg.labels or sorted({_answer(m) for m in heldout["messages"]})


def _prediction_rows(candidate, where, frame, references, outputs) -> list[dict]:
    return [
        {
            "candidate": candidate,
            "set": where,
            "id": key,
            "prompt": _question(m)[-1]["content"],
            "reference": ref,
            "output": out,
        }
        for key, m, ref, out in zip(frame["id"], frame["messages"], references, outputs)
    ]


def _score_heldout(heldout, candidates, answers, scorer) -> tuple[dict, dict, list[dict]]:
    """Per-row statistics, aggregate metrics and prediction rows of every candidate."""
    references = [_answer(m) for m in heldout["messages"]]
    stats, metrics, predictions = {}, {}, []
    for candidate in candidates:
        outputs = [answers[f"{candidate}|heldout|{key}"] for key in heldout["id"]]
        stats[candidate] = scorer.row_stats(outputs, references)
        metrics[candidate] = scorer.aggregate(stats[candidate])
        predictions += _prediction_rows(candidate, "heldout", heldout, references, outputs)
    return stats, metrics, predictions


def _overfit_gap(train, cfg, seed, answers, scorer, tuned_score) -> tuple[float | None, list]:
    """Tuned score on a sample of training rows minus its held-out score."""
    rows = sample_rows(train, cfg.train_sample_rows, seed, "overfit:")
    if not len(rows):
        return None, []
    outputs = [answers[f"tuned|train|{key}"] for key in rows["id"]]
    references = [_answer(m) for m in rows["messages"]]
    train_score = scorer.aggregate(scorer.row_stats(outputs, references))[cfg.primary_metric]
    return train_score - tuned_score, _prediction_rows("tuned", "train", rows, references, outputs)


def _probe_results(probes, answers) -> tuple[dict, list[str], list[dict]]:
    """Which probes each of baseline and tuned passes, the regressions, prediction rows."""
    if not probes:
        return {}, [], []
    results = {
        c: {p.id: p.passed(answers[f"{c}|probe|{p.id}"]) for p in probes}
        for c in ("baseline", "tuned")
    }
    regressions = [p.id for p in probes if results["baseline"][p.id] and not results["tuned"][p.id]]
    rows = [
        {
            "candidate": candidate,
            "set": "probe",
            "id": p.id,
            "prompt": p.question,
            "reference": p.expected,
            "output": answers[f"{candidate}|probe|{p.id}"],
        }
        for candidate in results
        for p in probes
    ]
    return results, regressions, rows


def _forgetting(probes, results) -> tuple[Forgetting | None, dict[str, Any] | None]:
    """Regressions, gains and McNemar's exact p over the paired probe outcomes, overall
    (what the gate reports) and per skill (report["forgetting"]); None without probes."""
    if not results:
        return None, None

    def compare(group: list[Probe]) -> Forgetting:
        return compare_probes(
            [results["baseline"][p.id] for p in group], [results["tuned"][p.id] for p in group]
        )

    overall = compare(probes)
    by_skill = {}
    for skill in family_counts(probes):
        paired = compare([p for p in probes if p.skill == skill])
        by_skill[skill] = {"probes": paired.probes, **paired.as_report()}
    return overall, {**overall.as_report(), "probes": overall.probes, "by_skill": by_skill}


def _add_costs_and_wins(metrics, candidates, stats, scorer, timings, parameters) -> None:
    """Win rate against the baseline, generation speed and size, beside each score."""
    for candidate in candidates:
        if candidate != "baseline":
            metrics[candidate]["win_rate_vs_baseline"] = win_rate(
                scorer, stats[candidate], stats["baseline"]
            )
        model = CANDIDATE_MODEL[candidate]
        timing = timings.get(model)
        if timing and timing.get("seconds"):
            metrics[candidate]["new_tokens_per_s"] = timing["new_tokens"] / timing["seconds"]
        if model in parameters:
            metrics[candidate]["parameters"] = float(parameters[model])


def candidate_costs(
    heldout: pd.DataFrame, candidates, costs: dict[str, dict[str, float]]
) -> dict[str, dict[str, float]]:
    """Per candidate, what one held-out answer costs: prompt tokens per request, and
    seconds per answer (its batch's time shared by the batch's rows)."""
    out = {}
    for candidate in candidates:
        rows = [costs.get(f"{candidate}|heldout|{key}") for key in heldout["id"]]
        rows = [row for row in rows if row]
        if rows:
            out[candidate] = {
                "prompt_tokens": float(np.mean([r["prompt_tokens"] for r in rows])),
                "seconds_per_answer": float(np.mean([r["seconds"] for r in rows])),
            }
    return out


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
    costs: dict[str, dict[str, float]] | None = None,
) -> Evaluation:
    """Score every candidate, bootstrap the primary difference, count regressions, decide."""
    scorer: Scorer = scorer_for(cfg.task, labels_for(cfg, heldout))
    metric = cfg.primary_metric
    candidates = [c for c in CANDIDATES if f"{c}|heldout|{heldout['id'].iloc[0]}" in answers]
    stats, metrics, predictions = _score_heldout(heldout, candidates, answers, scorer)
    names = {BASE: "baseline", TUNED: "tuned", CHAMPION: "champion", TEACHER: "teacher"}
    for model, loss in losses.items():
        metrics.setdefault(names[model], {}).update(
            heldout_loss=loss, heldout_perplexity=math.exp(loss)
        )
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
    overfit_gap, train_rows = _overfit_gap(train, cfg, seed, answers, scorer, scores["tuned"])
    probe_results, regressions, probe_rows = _probe_results(probes, answers)
    forgetting, forgetting_report = _forgetting(probes, probe_results)
    for candidate, passed in probe_results.items():
        metrics[candidate]["probe_accuracy"] = float(np.mean(list(passed.values())))
    _add_costs_and_wins(metrics, candidates, stats, scorer, timings, parameters or {})
    for candidate, cost in candidate_costs(heldout, candidates, costs or {}).items():
        metrics[candidate].update(cost)
    verdict = gates.decide(cfg.gate, metric, scores, interval, regressions, overfit_gap, forgetting)
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
        "forgetting": forgetting_report,
        "probes": {c: sum(v.values()) for c, v in probe_results.items()},
        "probe_count": len(probes),
        "overfit_gap": overfit_gap,
        "timings": timings,
        "verdict": {"ship": verdict.ship, "label": verdict.label, "reasons": verdict.reasons},
        "heldout_rows": len(heldout),
    }
    if cfg.task == "classification":
        report["confusion"] = {c: scorer.confusion(stats[c]) for c in candidates}  # type: ignore[attr-defined]
    return Evaluation(
        report=report, predictions=pd.DataFrame(predictions + train_rows + probe_rows)
    )
