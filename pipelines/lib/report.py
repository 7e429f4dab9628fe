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


CANDIDATE_ORDER = (
    "baseline",
    "few_shot",
    "retrieval",
    "tuned",
    "tuned_retrieval",
    "champion",
    "teacher",
)


def _cost_cells(scores: dict) -> list[str]:
    """What an answer costs: prompt tokens per request, seconds per answer (batched)."""
    prompt = f"{scores['prompt_tokens']:.0f}" if "prompt_tokens" in scores else ""
    latency = f"{scores['seconds_per_answer']:.2f}" if "seconds_per_answer" in scores else ""
    return [prompt, latency]


def ladder_rows(report: dict) -> list[list[str]]:
    """One row per candidate: primary metric, interval vs the best cheaper rung, probes,
    loss, size, speed and cost per answer. Works on the cheap rungs' partial report too."""
    metric, interval = report["primary_metric"], report.get("interval")
    header = ["candidate", metric]
    if interval:
        header.append(f"tuned - {interval['versus']} ({interval['confidence']:.0%} CI)")
    header += ["probes right", "held-out loss", "params", "new tok/s", "prompt tok", "s/answer"]
    rows = [header]
    for name in CANDIDATE_ORDER:
        scores = report["candidates"].get(name)
        if not scores or metric not in scores:
            continue
        row = [name, f"{scores[metric]:.3f}"]
        if interval:
            row.append(
                f"{interval['mean']:+.3f} [{interval['low']:+.3f}, {interval['high']:+.3f}]"
                if name == "tuned"
                else ""
            )
        probes = report.get("probes", {})
        row.append(f"{probes[name]}/{report['probe_count']}" if name in probes else "")
        row.append(f"{scores['heldout_loss']:.3f}" if "heldout_loss" in scores else "")
        row.append(f"{scores['parameters'] / 1e6:.1f}M" if "parameters" in scores else "")
        row.append(f"{scores['new_tokens_per_s']:.1f}" if "new_tokens_per_s" in scores else "")
        rows.append(row + _cost_cells(scores))
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
    retrieval = report.get("retrieval") or {}
    if "recall_at_k" in retrieval:
        lines.append(f"retrieval recall@{retrieval['k']}: {retrieval['recall_at_k']:.3f}")
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


# One colour per candidate, the same in every chart (and in the legend of none: the bars
# are labelled), so a reader learns it once.
CANDIDATE_COLOURS = {
    "baseline": "#8c8c8c",
    "few_shot": "#4a90c2",
    "tuned": "#2a9d5c",
    "champion": "#d08a2c",
    "teacher": "#8e5bb5",
}
_OTHER_COLOUR = "#555555"
_NOT_CHARTED = ("heldout_perplexity", "new_tokens_per_s", "parameters")


def _charted_value(value: object) -> float | None:
    """A finite number to draw, or None (missing, NaN or not a number)."""
    import math

    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def metric_charts(report: dict) -> dict[str, bytes]:
    """A bar chart per metric, candidates side by side (PNG bytes by file name).

    Each candidate keeps its colour (CANDIDATE_COLOURS) in every chart; a metric no
    candidate has a finite value for gets no chart.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in CANDIDATE_ORDER if n in report["candidates"]]
    names += sorted(n for n in report["candidates"] if n not in CANDIDATE_ORDER)
    metrics = sorted({m for n in names for m in report["candidates"][n] if m not in _NOT_CHARTED})
    charts = {}
    for metric in metrics:
        values = {n: _charted_value(report["candidates"][n].get(metric)) for n in names}
        present = [n for n in names if values[n] is not None]
        if not present:
            continue
        figure, axis = plt.subplots(figsize=(4, 2.5))
        bars = axis.bar(
            present,
            [values[n] for n in present],
            color=[CANDIDATE_COLOURS.get(n, _OTHER_COLOUR) for n in present],
        )
        axis.bar_label(bars, fmt="%.3g", padding=2, fontsize=8)
        drawn = [values[n] for n in present]
        if all(0.0 <= v <= 1.0 for v in drawn):  # a rate: the whole 0..1 scale, even at 0
            axis.set_ylim(0.0, 1.1)
        else:
            axis.margins(y=0.15)
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


def ladder_markdown(
    report: dict,
    charts: dict[str, bytes],
    samples: list[dict],
    images: str = "embedded",
    chart_dir: str = "charts",
) -> str:
    """The evaluation report: verdict, ladder table, reasons, charts, a few answers.

    `images="embedded"` inlines the charts as data URIs (Dagster metadata, one string);
    `images="relative"` links them as `<chart_dir>/<name>`, the files logged beside the
    report (MLflow's `evaluation/report.md` next to `evaluation/charts/`).
    """
    import base64

    if images not in ("embedded", "relative"):
        raise ValueError(f"images must be 'embedded' or 'relative', not {images!r}")

    def image(name: str, png: bytes) -> str:
        alt = name.removesuffix(".png")
        if images == "relative":
            return f"![{alt}]({chart_dir.rstrip('/')}/{name})"
        return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"

    verdict = report["verdict"]
    parts = [
        f"## Verdict: {verdict['label']}",
        "\n".join(f"- {reason}" for reason in verdict["reasons"]),
        _markdown_table(ladder_rows(report)),
        " ".join(image(name, png) for name, png in charts.items()),
        "### Sample answers",
        samples_markdown(samples),
    ]
    return "\n\n".join(parts)


def html_page(markdown: str, title: str) -> str:
    """A self-contained HTML page of `markdown` (its images should be data URIs).

    MLflow's artifact viewer renders markdown without any image (it drops data URIs
    and shows other image links as text) but shows an HTML artifact, images included,
    in a sandboxed frame: so the reports are also logged as HTML.
    """
    import html

    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_PAGE_STYLE}</style></head>\n"
        f"<body>\n{body}</body></html>\n"
    )


_PAGE_STYLE = (
    "body{font-family:system-ui,sans-serif;font-size:14px;margin:16px;color:#222}"
    "table{border-collapse:collapse;margin:8px 0}"
    "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3}img{max-width:100%;margin:4px}"
)
