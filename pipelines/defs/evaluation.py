"""Evaluation, the blocking ship gate, and the adapter that ships."""

import json
from dataclasses import asdict
from pathlib import Path

import dagster as dg

from pipelines.defs.common import (
    recipe_for,
    recipe_partitions,
    remember,
    reproduced_run,
    reuse,
    reused_output,
    run_inference,
    workdir,
)
from pipelines.lib import aliases, asset_cache, registry, tracking
from pipelines.lib import evaluation as ladder
from pipelines.lib.dataset import read_conversations, write_jsonl
from pipelines.lib.probes import all_probes
from pipelines.lib.report import ladder_markdown, metric_charts
from pipelines.lib.teacher import ask_http_teacher_rows
from pipelines.lib.training_set import as_sft


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
    tracking.log_metrics(client, run_id, metrics)
    client.set_tag(run_id, "rung.verdict", report["verdict"]["label"])
    client.set_tag(run_id, "rung.primary_metric", report["primary_metric"])
    client.set_tag(run_id, "rung.verdict_reasons", " | ".join(report["verdict"]["reasons"])[:5000])
    for name, png in charts.items():
        (folder / name).write_bytes(png)
        client.log_artifact(run_id, str(folder / name), "evaluation/charts")
    for name in ("report.json", "report.md", "predictions.parquet"):
        client.log_artifact(run_id, str(folder / name), "evaluation")


def _record_evaluation(client, run_id: str, recipe, key: str, report: dict) -> None:
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


def _evaluation_logged(run_id: str, key: str) -> bool:
    """The MLflow run still shows the evaluation stored under `key` (not a later one)."""
    if not tracking.run_exists(run_id):
        return False
    tags = tracking.configure_mlflow().get_run(run_id).data.tags
    return tags.get("rung.evaluation_key") == key


@dg.asset(
    partitions_def=recipe_partitions,
    group_name="rung",
    code_version=asset_cache.code_version("evaluation"),
)
def evaluation(
    context: dg.AssetExecutionContext,
    pipes_subprocess_client: dg.PipesSubprocessClient,
    base_model: dict,
    split: dict,
    training_set: dict,
    training_run: dict,
) -> dg.Output[dict]:
    """Baseline, few-shot and tuned on the same held-out rows; probes; overfitting; verdict."""
    recipe = recipe_for(context)
    cfg, seed = recipe.spec.eval, recipe.spec.data.seed
    run_id = training_run["mlflow_run_id"]
    # The champion is not part of the key: it is looked up when the evaluation runs.
    key, reused = reuse(
        context,
        recipe,
        {
            "base_model": base_model["sha256"],
            "training_set": training_set["sha256"],
            "split": [split["train_sha256"], split["heldout_sha256"]],
            "adapter": training_run.get("adapter_sha256"),
            "mlflow_run_id": run_id,
        },
    )
    if reused is not None and _evaluation_logged(run_id, key):
        markdown = Path(reused["markdown_file"]).read_text()
        return reused_output(
            reused,
            reused["report_sha256"],
            key,
            {"verdict": reused["verdict"]["label"], "report": dg.MetadataValue.md(markdown)},
        )
    folder = workdir(context)
    train = as_sft(read_conversations(Path(split["train_file"])))
    heldout = as_sft(read_conversations(Path(split["heldout_file"])))
    heldout_file = folder / "heldout_conversations.jsonl"
    write_jsonl(heldout[["id", "messages"]].to_dict("records"), heldout_file)
    probes = all_probes() if cfg.probes else []
    teacher = training_set.get("teacher") or {}
    adapters = {ladder.TUNED: training_run["adapter_dir"]}
    if teacher.get("adapter_dir"):
        adapters[ladder.TEACHER] = teacher["adapter_dir"]
    # The registry's champion answers the same held-out rows (not in a reproduction).
    champion = (
        {}
        if reproduced_run(context)
        else aliases.champion_for_evaluation(
            recipe.registered_name, base_model["sha256"], run_id, folder / "champion"
        )
    )
    if champion.get("adapter_dir"):
        adapters[ladder.CHAMPION] = champion.pop("adapter_dir")
    elif champion:
        context.log.info(f"champion v{champion['version']} not evaluated: {champion['skipped']}")
    requests = ladder.build_requests(
        heldout,
        train,
        cfg,
        seed,
        probes,
        with_champion=ladder.CHAMPION in adapters,
        with_teacher=ladder.TEACHER in adapters,
    )

    with tracking.failing_marks_run(run_id) as client:
        answers, inference = run_inference(
            context,
            pipes_subprocess_client,
            folder,
            base_model_dir=base_model["path"],
            adapters=adapters,
            requests=requests,
            mlflow_run_id=run_id,
            loss={
                "heldout_file": str(heldout_file),
                "models": list(adapters) + [ladder.BASE],
                "sequence_len": recipe.spec.train.sequence_len,
            },
        )
        if teacher.get("url"):  # an HTTP teacher answers the held-out rows too, for comparison
            answers.update(ask_http_teacher_rows(recipe.spec.train.distill, heldout, "teacher"))
        result = ladder.score(
            heldout,
            train,
            cfg,
            seed,
            probes,
            answers,
            inference["losses"],
            inference["timings"],
            inference.get("parameters"),
        )
        report, charts = result.report, metric_charts(result.report)
        report["method"] = recipe.spec.train.method
        (folder / "report.json").write_text(json.dumps(report, indent=2))
        result.predictions.to_parquet(folder / "predictions.parquet", index=False)
        markdown = ladder_markdown(report, charts, _samples(result.predictions, cfg.num_samples))
        (folder / "report.md").write_text(markdown)
        _log_report(client, run_id, folder, report, charts)
        _record_evaluation(client, run_id, recipe, key, report)
    tracking.finish_run(run_id)

    tuned = report["candidates"]["tuned"]
    if "champion" in report["candidates"]:
        champion["score"] = report["candidates"]["champion"][report["primary_metric"]]
    value = {
        "report_file": str(folder / "report.json"),
        "verdict": report["verdict"],
        "primary_metric": report["primary_metric"],
        "report": report,
        "markdown_file": str(folder / "report.md"),
        "report_sha256": registry.evaluation_sha256(report),
        "champion": champion,
    }
    remember(context, recipe, key, value, [value["report_file"], value["markdown_file"]])
    return dg.Output(
        value,
        data_version=dg.DataVersion(value["report_sha256"]),
        metadata={
            "cache": "computed",
            "cache_key": key,
            "champion": dg.MetadataValue.json(champion),
            "verdict": report["verdict"]["label"],
            "primary_metric": report["primary_metric"],
            f"tuned_{report['primary_metric']}": tuned[report["primary_metric"]],
            "interval_low": report["interval"]["low"],
            "regressions": len(report["regressions"]),
            "report": dg.MetadataValue.md(markdown),
            "predictions": dg.MetadataValue.path(str(folder / "predictions.parquet")),
        },
    )


@dg.asset_check(
    asset=evaluation,
    blocking=True,
    partitions_def=recipe_partitions,
    description="SHIP or NO-SHIP: gates registration.",
)
def ship_gate(evaluation: dict) -> dg.AssetCheckResult:
    verdict = evaluation["verdict"]
    return dg.AssetCheckResult(
        passed=verdict["ship"],
        metadata={
            "verdict": verdict["label"],
            "reasons": dg.MetadataValue.md(
                "\n".join(f"- {reason}" for reason in verdict["reasons"])
            ),
        },
        description=f"{verdict['label']}: " + "; ".join(verdict["reasons"]),
    )


@dg.asset(
    partitions_def=recipe_partitions,
    group_name="rung",
    code_version=asset_cache.code_version("registered_adapter"),
)
def registered_adapter(
    context: dg.AssetExecutionContext,
    base_model: dict,
    split: dict,
    training_run: dict,
    evaluation: dict,
) -> dg.Output[dict]:
    """The adapter that passed the gate: a version of the recipe's registered model in MLflow
    (loadable as models:/<name>@champion), with the challenger/champion aliases moved."""
    recipe = recipe_for(context)
    run_id = training_run["mlflow_run_id"]
    if not evaluation["verdict"]["ship"]:  # the blocking check stops us first; never register
        raise dg.Failure(f"verdict is {evaluation['verdict']['label']}: nothing is registered")
    adapter_dir = Path(training_run["adapter_dir"])
    with tracking.failing_marks_run(run_id) as client:
        for name in registry.ADAPTER_FILES:
            client.log_artifact(run_id, str(adapter_dir / name), "adapter")
        artifact_uri = client.get_run(run_id).info.artifact_uri + "/adapter"
    report_files = [Path(evaluation["report_file"])]
    if evaluation.get("markdown_file"):
        report_files.append(Path(evaluation["markdown_file"]))
    done = registry.register_adapter(
        name=recipe.registered_name,
        run_id=run_id,
        adapter_dir=adapter_dir,
        base_model=base_model,
        report=evaluation["report"],
        evaluated_champion=evaluation.get("champion"),
        attachments={"data_card": [Path(split["data_card"]).parent], "evaluation": report_files},
        dagster_run_id=context.run_id,
    )
    for move in done.moves:
        context.log.info(
            f"alias {move.alias}: v{move.previous or '-'} -> v{move.version} ({move.reason})"
        )
    value = {
        "mlflow_run_id": run_id,
        "adapter_uri": artifact_uri,
        "adapter_dir": str(adapter_dir),
        "registered_model": done.name,
        "version": done.version,
        "model_uri": done.model_uri,
        "aliases": done.aliases,
        "created": done.created,
        "promotion": done.decision,
        "alias_moves": [asdict(move) for move in done.moves],
    }
    return dg.Output(
        value,
        data_version=dg.DataVersion(f"{done.name}/{done.version}"),
        metadata={
            "model_uri": done.model_uri,
            "aliases": ", ".join(done.aliases) or "-",
            "new_version": done.created,
            "promotion": done.decision,
            "alias_moves": dg.MetadataValue.json([asdict(move) for move in done.moves]),
            "adapter_uri": artifact_uri,
            "mlflow_run_id": run_id,
        },
    )
