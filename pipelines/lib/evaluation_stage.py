"""The evaluation stage: every candidate answers the same held-out rows, then the gate.

Who answers: baseline, few-shot and tuned (lib/evaluation.py builds the requests and
scores them), the registry's champion when it adapts the same base model, a distilled
student's teacher. The asset passes `infer` (the trainer-env worker through Dagster
Pipes); results go to report files, the MLflow run and the Evaluation value.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipelines.lib import aliases, registry, tracking
from pipelines.lib import evaluation as ladder
from pipelines.lib.asset_values import (
    BaseModelValue,
    CheapRungs,
    Evaluation,
    Split,
    StageError,
    TrainingRun,
    TrainingSet,
)
from pipelines.lib.cheap_rungs_stage import read_answers, read_contexts
from pipelines.lib.dataset import read_conversations, write_jsonl
from pipelines.lib.inference import Infer
from pipelines.lib.probes import probes_for
from pipelines.lib.report import html_page, ladder_markdown, metric_charts
from pipelines.lib.teacher import TeacherError, ask_http_teacher_rows
from pipelines.lib.training_set import as_sft
from pipelines.recipe import LoadedRecipe


def cache_inputs(
    base_model: BaseModelValue,
    split: Split,
    cheap_rungs: CheapRungs,
    training_set: TrainingSet,
    training_run: TrainingRun,
) -> dict[str, Any]:
    """The champion is not part of the key: it is looked up when the evaluation runs."""
    return {
        "cheap_rungs": cheap_rungs.sha256,
        "base_model": base_model.sha256,
        "training_set": training_set.sha256,
        "split": [split.train_sha256, split.heldout_sha256],
        "adapter": training_run.adapter_sha256,
        "mlflow_run_id": training_run.mlflow_run_id,
    }


def still_logged(value: Evaluation, key: str, training_run: TrainingRun) -> bool:
    """A stored evaluation is reusable only while its MLflow run still shows it (not a
    later evaluation of the same run)."""
    run_id = training_run.mlflow_run_id
    if not tracking.run_exists(run_id):
        return False
    tags = tracking.configure_mlflow().get_run(run_id).data.tags
    return tags.get("rung.evaluation_key") == key


def _samples(predictions, count: int) -> list[dict]:
    """The first held-out rows with every candidate's answer side by side."""
    heldout = predictions[predictions["set"] == "heldout"]
    wide = heldout.pivot_table(
        index=["id", "prompt", "reference"], columns="candidate", values="output", aggfunc="first"
    ).reset_index()
    return wide.head(count).drop(columns="id").to_dict("records")


def _log_report(client, run_id: str, folder: Path, report: dict, charts: dict[str, bytes]) -> None:
    metrics = {
        f"{candidate}.{name}": value
        for candidate, scores in report["candidates"].items()
        for name, value in scores.items()
    }
    interval = report["interval"]
    metrics.update(
        {
            "gate.interval_low": interval["low"],
            "gate.interval_high": interval["high"],
            "gate.difference": interval["mean"],
            "gate.regressions": len(report["regressions"]),
            "gate.ship": float(report["verdict"]["ship"]),
        }
    )
    if report["overfit_gap"] is not None:
        metrics["gate.overfit_gap"] = report["overfit_gap"]
    forgetting = report.get("forgetting") or {}
    for name in ("mcnemar_p", "regression_rate", "gains"):
        if forgetting.get(name) is not None:
            metrics[f"forgetting.{name}"] = forgetting[name]
    if "recall_at_k" in (report.get("retrieval") or {}):
        metrics["retrieval.recall_at_k"] = report["retrieval"]["recall_at_k"]
    tracking.log_metrics(client, run_id, metrics)
    client.set_tag(run_id, "rung.verdict", report["verdict"]["label"])
    client.set_tag(run_id, "rung.primary_metric", report["primary_metric"])
    client.set_tag(run_id, "rung.verdict_reasons", " | ".join(report["verdict"]["reasons"])[:5000])
    for name, png in charts.items():
        (folder / "charts" / name).write_bytes(png)
        client.log_artifact(run_id, str(folder / "charts" / name), "evaluation/charts")
    for name in ("report.json", "report.md", "report.html", "predictions.parquet"):
        client.log_artifact(run_id, str(folder / name), "evaluation")


def _record_evaluation(client, run_id: str, recipe: LoadedRecipe, key: str, report: dict) -> None:
    """Mark the MLflow run with this evaluation's cache key; when the recipe changed since
    training (an eval-only change reuses the training), log the recipe that evaluated."""
    client.set_tag(run_id, "rung.evaluation_key", key)
    client.set_tag(run_id, "rung.interval_versus", report["interval"]["versus"])
    tags = client.get_run(run_id).data.tags
    if tags.get("rung.recipe_sha256") != recipe.sha256:
        client.set_tag(
            run_id,
            "rung.training_recipe_sha256",
            tags.get("rung.training_recipe_sha256", tags.get("rung.recipe_sha256")),
        )
        client.set_tag(run_id, "rung.recipe_sha256", recipe.sha256)
        client.log_artifact(run_id, str(recipe.path), "recipe")


def _champion(recipe, base_model, training_run, folder: Path, reproduces) -> dict[str, Any]:
    """The registry's champion, downloaded to answer the same rows (not in a reproduction)."""
    if reproduces:
        return {}
    return aliases.champion_for_evaluation(
        recipe.registered_name, base_model.sha256, training_run.mlflow_run_id, folder / "champion"
    )


def _adapters(recipe, base_model, training_set, training_run, folder, reproduces):
    """The adapters that answer: the tune, a distilled student's teacher, the champion."""
    teacher = training_set.teacher or {}
    adapters = {ladder.TUNED: training_run.adapter_dir}
    if teacher.get("adapter_dir"):
        adapters[ladder.TEACHER] = teacher["adapter_dir"]
    champion = _champion(recipe, base_model, training_run, folder, reproduces)
    if champion.get("adapter_dir"):
        adapters[ladder.CHAMPION] = champion.pop("adapter_dir")
    return adapters, champion


def _write_report(folder: Path, report: dict, predictions, num_samples: int) -> dict[str, bytes]:
    """report.json, predictions.parquet, and the markdown report three ways: with its
    charts linked as sibling files (MLflow), inlined (Dagster has no image metadata), and
    as an HTML page (MLflow's markdown viewer shows no image; its HTML viewer does)."""
    charts = metric_charts(report)
    (folder / "charts").mkdir(exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report, indent=2))
    predictions.to_parquet(folder / "predictions.parquet", index=False)
    samples = _samples(predictions, num_samples)
    relative = ladder_markdown(report, charts, samples, images="relative")
    (folder / "report.md").write_text(relative)
    embedded = ladder_markdown(report, charts, samples)
    (folder / "report_embedded.md").write_text(embedded)
    (folder / "report.html").write_text(html_page(embedded, "Evaluation report"))
    return charts


def run_evaluation(
    recipe: LoadedRecipe,
    base_model: BaseModelValue,
    split: Split,
    cheap_rungs: CheapRungs,
    training_set: TrainingSet,
    training_run: TrainingRun,
    folder: Path,
    infer: Infer,
    *,
    key: str,
    reproduces: str | None = None,
) -> Evaluation:
    """The tune (and champion, teacher) beside the cheap rungs' answers on the same
    held-out rows; probes; overfitting; verdict. `key` (the cache key) is recorded on the
    MLflow run so a reuse can be checked."""
    cfg, seed, run_id = recipe.spec.eval, recipe.spec.data.seed, training_run.mlflow_run_id
    train = as_sft(read_conversations(Path(split.train_file)))
    heldout = as_sft(read_conversations(Path(split.heldout_file)))
    heldout_file = folder / "heldout_conversations.jsonl"
    write_jsonl(heldout[["id", "messages"]].to_dict("records"), heldout_file)
    probes = probes_for(cfg.probes)
    adapters, champion = _adapters(
        recipe, base_model, training_set, training_run, folder, reproduces
    )
    requests = ladder.build_tuned_requests(
        heldout,
        train,
        cfg,
        seed,
        probes,
        with_champion=ladder.CHAMPION in adapters,
        with_teacher=ladder.TEACHER in adapters,
        contexts=read_contexts(recipe, heldout, cheap_rungs),
    )
    answers, costs = read_answers(cheap_rungs)  # the cheap rungs are not asked again
    loss = {
        "heldout_file": str(heldout_file),
        "models": list(adapters) + [ladder.BASE],
        "sequence_len": recipe.spec.train.sequence_len,
    }
    with tracking.failing_marks_run(run_id) as client:
        inference = infer(requests, adapters, mlflow_run_id=run_id, loss=loss)
        answers.update(inference.answers)
        costs.update(inference.costs)
        if (training_set.teacher or {}).get("url"):  # an HTTP teacher answers them too
            answers.update(_http_teacher_answers(recipe, heldout))
        timings = {**cheap_rungs.timings, **inference.timings}
        result = ladder.score(
            heldout, train, cfg, seed, probes, answers, inference.losses, timings,
            inference.parameters, costs,
        )  # fmt: skip
        report = {**result.report, "method": recipe.spec.train.method}
        if cheap_rungs.retrieval:
            report["retrieval"] = cheap_rungs.retrieval
        charts = _write_report(folder, report, result.predictions, cfg.num_samples)
        _log_report(client, run_id, folder, report, charts)
        _record_evaluation(client, run_id, recipe, key, report)
    tracking.finish_run(run_id)
    if "champion" in report["candidates"]:
        champion["score"] = report["candidates"]["champion"][report["primary_metric"]]
    return Evaluation(
        report=report,
        report_file=str(folder / "report.json"),
        markdown_file=str(folder / "report_embedded.md"),
        report_sha256=registry.evaluation_sha256(report),
        predictions_file=str(folder / "predictions.parquet"),
        champion=champion,
    )


def _http_teacher_answers(recipe: LoadedRecipe, heldout) -> dict[str, str]:
    try:
        return ask_http_teacher_rows(recipe.spec.train.distill, heldout, "teacher")
    except TeacherError as exc:
        raise StageError(str(exc)) from None
