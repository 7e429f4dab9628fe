"""`rung compare`: each recipe's latest run side by side, read from MLflow.

The columns are what the MLflow UI shows for the experiment `rung` when these are
added to its table: tags `rung.recipe_id`, `rung.verdict`, `rung.primary_metric`,
`rung.data_dvc_md5`, `rung.recipe_sha256`, and metrics `tuned.<primary metric>`,
`gate.interval_low`, `gate.interval_high` (and tag `rung.interval_versus`).
Reproductions are left out.
"""

from __future__ import annotations

import datetime
from typing import Any

from pipelines.lib import tracking

COLUMNS = (
    "recipe",
    "started",
    "status",
    "verdict",
    "metric",
    "tuned",
    "interval (vs)",
    "data md5",
    "recipe sha",
    "registered",
    "mlflow run",
)


def latest_runs(recipe_ids: list[str] | None = None) -> list[Any]:
    """The newest MLflow run of each recipe (all recipes seen in MLflow when none named)."""
    client = tracking.configure_mlflow()
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT)
    runs = client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=5000
    )
    latest: dict[str, Any] = {}
    for run in runs:
        recipe = run.data.tags.get("rung.recipe_id")
        if recipe and "rung.reproduces" not in run.data.tags and recipe not in latest:
            latest[recipe] = run
    wanted = recipe_ids if recipe_ids is not None else sorted(latest)
    return [latest[r] for r in wanted if r in latest]


def _registered(client: Any, run_id: str) -> str:
    versions = client.search_model_versions(f"run_id = '{run_id}'")
    return (
        ", ".join(
            f"{v.name} v{v.version}" + (f" ({', '.join(sorted(v.aliases))})" if v.aliases else "")
            for v in versions
        )
        or "-"
    )


def comparison_row(run: Any, client: Any) -> dict[str, str]:
    tags, metrics = run.data.tags, run.data.metrics
    metric = tags.get("rung.primary_metric")
    tuned = metrics.get(f"tuned.{metric}") if metric else None
    low, high = metrics.get("gate.interval_low"), metrics.get("gate.interval_high")
    versus = tags.get("rung.interval_versus", "?")
    started = datetime.datetime.fromtimestamp(run.info.start_time / 1000)
    return {
        "recipe": tags["rung.recipe_id"],
        "started": started.strftime("%Y-%m-%d %H:%M"),
        "status": run.info.status,
        "verdict": tags.get("rung.verdict", "-"),
        "metric": metric or "-",
        "tuned": f"{tuned:.3f}" if tuned is not None else "-",
        "interval (vs)": (
            f"[{low:+.3f}, {high:+.3f}] vs {versus}"
            if low is not None and high is not None
            else "-"
        ),
        "data md5": tags.get("rung.data_dvc_md5", "-")[:12],
        "recipe sha": tags.get("rung.recipe_sha256", "-")[:12],
        "registered": _registered(client, run.info.run_id),
        "mlflow run": run.info.run_id,
    }


def comparison_rows(recipe_ids: list[str] | None = None) -> list[dict[str, str]]:
    client = tracking.configure_mlflow()
    return [comparison_row(run, client) for run in latest_runs(recipe_ids)]


def format_table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "no rung runs in MLflow yet: launch one with `rung run recipes/<recipe>.yaml`"
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in COLUMNS}
    lines = [
        "  ".join(c.ljust(widths[c]) for c in COLUMNS).rstrip(),
        "  ".join("-" * widths[c] for c in COLUMNS),
    ]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in COLUMNS).rstrip() for r in rows]
    return "\n".join(lines)
