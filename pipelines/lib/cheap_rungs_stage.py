"""The cheap_rungs stage: the rungs below fine-tuning, asked before anything is trained.

The base model answers every held-out row zero-shot, few-shot and (with eval.retrieval)
with the top-k corpus passages, plus the forgetting probes. When one of those rungs
reaches eval.target, the climb stops there: nothing is trained and that rung's prompt is
what ships (lib/prompt_registry.py). The evaluation after training reuses these answers.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines import paths
from pipelines.lib import evaluation as ladder
from pipelines.lib import gate, tracking
from pipelines.lib.asset_values import BaseModelValue, CheapRungs, RawData, Split, StageError
from pipelines.lib.dataset import read_conversations, read_jsonl, sha256_file, write_jsonl
from pipelines.lib.inference import Infer
from pipelines.lib.probes import probes_for
from pipelines.lib.retrieval import Retriever, chunk_corpus, recall_at_k, retrieval_messages
from pipelines.lib.training_set import as_sft
from pipelines.recipe import LoadedRecipe


def corpus_files(recipe: LoadedRecipe) -> list[Path]:
    retrieval = recipe.spec.eval.retrieval
    return [paths.sources_root() / name for name in retrieval.corpus] if retrieval else []


def cache_inputs(recipe: LoadedRecipe, base_model: BaseModelValue, split: Split) -> dict:
    return {
        "base_model": base_model.sha256,
        "split": [split.train_sha256, split.heldout_sha256],
        "corpus": {str(f): sha256_file(f) for f in corpus_files(recipe)},
    }


def retrieve(
    recipe: LoadedRecipe, heldout: pd.DataFrame, folder: Path
) -> tuple[dict[str, list[dict]], dict[str, Any], Path | None]:
    """Each held-out question with its top-k passages pasted in; what was retrieved
    (method, k, corpus hashes, recall@k when rows name their passage); the contexts file."""
    cfg = recipe.spec.eval.retrieval
    if cfg is None:
        return {}, {}, None
    try:
        retriever = Retriever(chunk_corpus(corpus_files(recipe)), method=cfg.method)
    except ValueError as exc:
        raise StageError(f"recipe {recipe.id}: eval.retrieval.corpus: {exc}") from None
    contexts, records = {}, []
    for row in heldout.itertuples(index=False):
        question = row.messages[:-1]
        found = retriever.search(question[-1]["content"], cfg.k)
        contexts[row.id] = retrieval_messages(question, found)
        records.append({"id": row.id, "passages": [p.id for p in found]})
    info: dict[str, Any] = {
        "method": cfg.method,
        "k": cfg.k,
        "passages": len(retriever.passages),
        "corpus": {name: sha256_file(f) for name, f in zip(cfg.corpus, corpus_files(recipe))},
    }
    if "passage" in heldout.columns and heldout["passage"].notna().all():
        gold = [str(p) for p in heldout["passage"]]
        info["recall_at_k"] = recall_at_k([r["passages"] for r in records], gold)
    file = folder / "contexts.jsonl"
    write_jsonl(records, file)
    return contexts, info, file


def read_contexts(recipe: LoadedRecipe, heldout: pd.DataFrame, cheap: CheapRungs) -> dict:
    """The same retrieval messages the cheap rungs were asked with (for tuned_retrieval)."""
    if not cheap.contexts_file:
        return {}
    retriever = Retriever(chunk_corpus(corpus_files(recipe)), recipe.spec.eval.retrieval.method)
    by_id = {p.id: p for p in retriever.passages}
    found = {
        r["id"]: [by_id[i] for i in r["passages"]] for r in read_jsonl(Path(cheap.contexts_file))
    }
    return {
        row.id: retrieval_messages(row.messages[:-1], found[row.id])
        for row in heldout.itertuples(index=False)
    }


def read_answers(cheap: CheapRungs) -> tuple[dict[str, str], dict[str, dict[str, float]]]:
    """The cheap rungs' answers and their costs, keyed like the evaluation's requests."""
    rows = read_jsonl(Path(cheap.answers_file))
    answers = {r["key"]: r["output"] for r in rows}
    costs = {r["key"]: {"prompt_tokens": r["prompt_tokens"], "seconds": r["seconds"]} for r in rows}
    return answers, costs


def run_cheap_rungs(
    recipe: LoadedRecipe,
    base_model: BaseModelValue,
    raw: RawData,
    split: Split,
    folder: Path,
    infer: Infer,
    *,
    dagster_run_id: str,
    tags: dict[str, str],
) -> CheapRungs:
    """Ask and score the cheap rungs; decide whether the climb stops before training."""
    cfg, seed = recipe.spec.eval, recipe.spec.data.seed
    train = as_sft(read_conversations(Path(split.train_file)))
    heldout = as_sft(read_conversations(Path(split.heldout_file)))
    contexts, retrieval, contexts_file = retrieve(recipe, heldout, folder)
    probes = probes_for(cfg.probes)
    requests = ladder.build_cheap_requests(heldout, train, cfg, seed, probes, contexts)
    run_id = tracking.start_run(recipe.id, dagster_run_id, tags)
    with tracking.failing_marks_run(run_id) as client:
        try:
            inference = infer(requests, {}, mlflow_run_id=run_id)
        except Exception as exc:  # the worker's own error type is private to Dagster Pipes
            raise StageError(
                f"recipe {recipe.id}: the base model could not answer the cheap rungs "
                f"(trainer env worker; MLflow run {run_id} marked FAILED): {exc}"
            ) from exc
        answers_file = folder / "answers.jsonl"
        write_jsonl(
            [
                {"key": key, "output": output, **inference.costs.get(key, {})}
                for key, output in inference.answers.items()
            ],
            answers_file,
        )
        metrics = ladder.score_cheap_rungs(heldout, cfg, inference.answers, inference.costs)
        metric = cfg.primary_metric
        scores = {name: values[metric] for name, values in metrics.items()}
        winner, decision = gate.cheapest_sufficient_rung(metric, scores, cfg.target)
        flat = {f"{c}.{name}": v for c, values in metrics.items() for name, v in values.items()}
        if "recall_at_k" in retrieval:
            flat["retrieval.recall_at_k"] = retrieval["recall_at_k"]
        tracking.log_metrics(client, run_id, flat)
        client.set_tag(run_id, "rung.cheapest_rung_decision", decision)
        if winner:  # the run ends here: its verdict names the rung that is used
            client.set_tag(run_id, "rung.verdict", f"USE {winner}")
            client.set_tag(run_id, "rung.primary_metric", metric)
    if winner:
        tracking.finish_run(run_id)
    digest = hashlib.sha256(answers_file.read_bytes() + decision.encode()).hexdigest()
    return CheapRungs(
        mlflow_run_id=run_id,
        primary_metric=metric,
        candidates=metrics,
        answers_file=str(answers_file),
        contexts_file=str(contexts_file) if contexts_file else None,
        timings=inference.timings,
        target=cfg.target,
        winner=winner,
        decision=decision,
        retrieval=retrieval,
        sha256=digest,
    )


def report_of(cheap: CheapRungs) -> dict[str, Any]:
    """The cheap rungs as a ladder report (for the run summary and the prompt registry)."""
    return {
        "primary_metric": cheap.primary_metric,
        "candidates": cheap.candidates,
        "decision": cheap.decision,
        "retrieval": cheap.retrieval,
        "verdict": {"label": cheap.label, "reasons": [cheap.decision]},
    }
