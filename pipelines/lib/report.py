"""Markdown shown in the Dagster UI and attached to MLflow runs."""

from __future__ import annotations


def _cell(text: str, limit: int = 160) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def samples_markdown(samples: list[dict]) -> str:
    """A table of held-out prompts with the reference and every candidate's answer."""
    if not samples:
        return "_no samples requested (eval.num_samples: 0)_"
    columns = list(samples[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(str(s.get(c, ""))) for c in columns) + " |" for s in samples]
    return "\n".join(lines)


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def run_summary(recipe_id: str, dagster_run_id: str, outputs: dict[str, dict]) -> str:
    """The closing summary of a run, from the values its assets returned."""
    raw = outputs.get("raw_data", {})
    split = outputs.get("split", {})
    learned = outputs.get("training_set", {})
    train = outputs.get("training_run", {})
    report = outputs.get("evaluation", {}).get("report")
    adapter = outputs.get("registered_adapter", {})
    rows = [
        ("recipe", recipe_id),
        ("dagster run", dagster_run_id),
        ("data.dvc md5", raw.get("data_md5")),
        (
            "train / held-out rows",
            f"{split.get('train_rows')} / {split.get('heldout_rows')}" if split else None,
        ),
        (
            "training set",
            f"{learned['rows']} rows ({learned['method']}"
            + (
                f", {learned['rehearsal_rows']} of them rehearsal"
                if learned.get("rehearsal_rows")
                else ""
            )
            + ")"
            if learned
            else None,
        ),
        ("training steps", train.get("steps")),
        ("final train loss", train.get("final_train_loss")),
        ("mlflow run id", train.get("mlflow_run_id")),
        (
            "adapter",
            adapter.get("adapter_uri")
            or (f"not registered ({train['adapter_dir']})" if train else None),
        ),
        (
            "registered",
            f"{adapter['model_uri']} ({', '.join(adapter['aliases']) or 'no alias'}"
            f"{'' if adapter['created'] else '; registered before'})"
            if adapter.get("model_uri")
            else None,
        ),
        ("promotion", adapter.get("promotion")),
        (
            "reused from cache",
            ", ".join(
                name
                for name, value in outputs.items()
                if isinstance(value, dict) and "reused_from_dagster_run" in value
            )
            or None,
        ),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [
        f"  {label:<{width}}  {_fmt(value) if value is not None else '-'}" for label, value in rows
    ]
    if report:
        lines += ["", *("  " + line for line in ladder_text(report).splitlines())]
    lines += [
        "",
        "  Dagster UI:  make ui      -> http://127.0.0.1:3000 (asset graph, partition metadata)",
        "  MLflow UI:   make mlflow  -> http://127.0.0.1:5000 (experiment 'rung': tags, metrics)",
    ]
    return "\n".join(lines)


CANDIDATE_ORDER = ("baseline", "few_shot", "tuned", "champion", "teacher")


def ladder_rows(report: dict) -> list[list[str]]:
    """One row per candidate: primary metric, interval vs the best cheaper rung, probes, loss."""
    metric = report["primary_metric"]
    interval = report["interval"]
    rows = [
        [
            "candidate",
            metric,
            f"tuned - {interval['versus']} ({interval['confidence']:.0%} CI)",
            "probes right",
            "held-out loss",
            "params",
            "new tok/s",
        ]
    ]
    for name in CANDIDATE_ORDER:
        scores = report["candidates"].get(name)
        if not scores or metric not in scores:
            continue
        ci = (
            f"{interval['mean']:+.3f} [{interval['low']:+.3f}, {interval['high']:+.3f}]"
            if name == "tuned"
            else ""
        )
        probes = (
            f"{report['probes'][name]}/{report['probe_count']}"
            if name in report.get("probes", {})
            else ""
        )
        loss = f"{scores['heldout_loss']:.3f}" if "heldout_loss" in scores else ""
        size = f"{scores['parameters'] / 1e6:.1f}M" if "parameters" in scores else ""
        speed = f"{scores['new_tokens_per_s']:.1f}" if "new_tokens_per_s" in scores else ""
        rows.append([name, f"{scores[metric]:.3f}", ci, probes, loss, size, speed])
    return rows


def ladder_text(report: dict) -> str:
    rows = ladder_rows(report)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    gap = report.get("overfit_gap")
    lines.append(
        f"regressions: {len(report['regressions'])}"
        + (f" ({', '.join(report['regressions'])})" if report["regressions"] else "")
        + (f"; overfitting gap (train sample - held-out): {gap:+.3f}" if gap is not None else "")
    )
    lines.append(f"verdict: {report['verdict']['label']}")
    lines += [f"  {reason}" for reason in report["verdict"]["reasons"]]
    return "\n".join(lines)


def _markdown_table(rows: list[list[str]]) -> str:
    head, *body = rows
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])


def _png(figure) -> bytes:
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    return buffer.getvalue()


def metric_charts(report: dict) -> dict[str, bytes]:
    """A bar chart per metric, candidates side by side (PNG bytes by file name)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in CANDIDATE_ORDER if n in report["candidates"]]
    metrics = sorted(
        {
            m
            for n in names
            for m in report["candidates"][n]
            if m not in ("heldout_perplexity", "new_tokens_per_s", "parameters")
        }
    )
    charts = {}
    for metric in metrics:
        present = [n for n in names if metric in report["candidates"][n]]
        figure, axis = plt.subplots(figsize=(4, 2.5))
        axis.bar(
            present,
            [report["candidates"][n][metric] for n in present],
            color=["#999", "#69c", "#2a7", "#c84"][: len(present)],
        )
        axis.set_title(metric)
        charts[f"{metric}.png"] = _png(figure)
        plt.close(figure)
    for candidate, confusion in report.get("confusion", {}).items():
        figure, axis = plt.subplots(figsize=(3.5, 3))
        axis.imshow(confusion["matrix"], cmap="Blues")
        axis.set_xticks(range(len(confusion["labels"])), confusion["labels"], rotation=45)
        axis.set_yticks(
            range(len(confusion["matrix"])), confusion["labels"][: len(confusion["matrix"])]
        )
        for i, row in enumerate(confusion["matrix"]):
            for j, value in enumerate(row):
                axis.text(j, i, str(value), ha="center", va="center")
        axis.set_title(f"confusion: {candidate}")
        charts[f"confusion_{candidate}.png"] = _png(figure)
        plt.close(figure)
    return charts


def ladder_markdown(report: dict, charts: dict[str, bytes], samples: list[dict]) -> str:
    """The evaluation report: verdict, ladder table, reasons, charts, a few answers."""
    import base64

    verdict = report["verdict"]
    parts = [
        f"## Verdict: {verdict['label']}",
        "\n".join(f"- {reason}" for reason in verdict["reasons"]),
        _markdown_table(ladder_rows(report)),
        " ".join(
            f"![{name}](data:image/png;base64,{base64.b64encode(png).decode()})"
            for name, png in charts.items()
        ),
        "### Sample answers",
        samples_markdown(samples),
    ]
    return "\n\n".join(parts)
