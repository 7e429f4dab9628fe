"""The closing summary `rung run` prints, from the typed values the assets returned."""

from __future__ import annotations

from typing import Any

from pipelines.lib.report import ladder_rows, ladder_text


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _training_set_line(learned: Any) -> str | None:
    if learned is None:
        return None
    rehearsal = f", {learned.rehearsal_rows} of them rehearsal" if learned.rehearsal_rows else ""
    return f"{learned.rows} rows ({learned.method}{rehearsal})"


def _adapter_lines(train: Any, adapter: Any, evaluation: Any) -> list[tuple[str, Any]]:
    if adapter is not None:
        aliases = ", ".join(adapter.aliases) or "no alias"
        again = "" if adapter.created else "; registered before"
        return [
            ("adapter", adapter.adapter_uri),
            ("registered", f"{adapter.model_uri} ({aliases}{again})"),
            ("promotion", adapter.promotion),
        ]
    if train is None:
        return []
    why = f"verdict {evaluation.verdict['label']}" if evaluation else "the run stopped"
    return [("adapter", f"not registered: {why} ({train.adapter_dir})")]


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def _cheap_ladder(cheap: Any) -> list[str]:
    """The rungs asked before training, when the climb stopped there."""
    rows = ladder_rows({"primary_metric": cheap.primary_metric, "candidates": cheap.candidates})
    recall = cheap.retrieval.get("recall_at_k")
    lines = _table(rows)
    if recall is not None:
        lines.append(f"retrieval recall@{cheap.retrieval['k']}: {recall:.3f}")
    return [*lines, f"verdict: {cheap.label}", f"  {cheap.decision}"]


def run_summary(
    recipe_id: str, dagster_run_id: str, outputs: dict[str, Any], reused: list[str] = ()
) -> str:
    """Counts, lineage, the ladder and the verdict of one run, for a terminal."""
    raw, split = outputs.get("raw_data"), outputs.get("split")
    learned, train = outputs.get("training_set"), outputs.get("training_run")
    evaluation = outputs.get("evaluation")
    rows = [
        ("recipe", recipe_id),
        ("dagster run", dagster_run_id),
        ("data.dvc md5", raw.data_md5 if raw else None),
        ("train / held-out rows", f"{split.train_rows} / {split.heldout_rows}" if split else None),
        ("training set", _training_set_line(learned)),
        ("training steps", train.steps if train else None),
        ("final train loss", train.final_train_loss if train else None),
        ("mlflow run id", train.mlflow_run_id if train else None),
        ("cheapest rung", outputs["cheap_rungs"].decision if "cheap_rungs" in outputs else None),
        *_adapter_lines(train, outputs.get("registered_adapter"), evaluation),
        (
            "prompt",
            f"{outputs['registered_prompt'].uri} (@champion)"
            if outputs.get("registered_prompt")
            else None,
        ),
        ("evaluation report", evaluation.report_file if evaluation else None),
        ("reused from cache", ", ".join(reused) or None),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [
        f"  {label:<{width}}  {_fmt(value) if value is not None else '-'}" for label, value in rows
    ]
    if evaluation:
        lines += ["", *("  " + line for line in ladder_text(evaluation.report).splitlines())]
    elif outputs.get("cheap_rungs") and outputs["cheap_rungs"].winner:
        lines += ["", *("  " + line for line in _cheap_ladder(outputs["cheap_rungs"]))]
    lines += [
        "",
        "  Dagster UI:  make ui      -> http://127.0.0.1:3000 (asset graph, partition metadata)",
        "  MLflow UI:   make mlflow  -> http://127.0.0.1:5000 (experiment 'rung': tags, metrics)",
    ]
    return "\n".join(lines)
