"""Watching what a served champion is asked: drift of its traffic against its reference.

`traffic_drift` (group "monitoring", so the `fine_tune` job never runs it) compares the
traffic `rung serve` logged for the recipe's registered model @champion with the
reference profile of that version (pipelines/lib/drift.py); its check `no_drift` fails
when any drift test alerts. Materialize it from the UI (pick the recipe's partition);
the sensor `new_traffic` launches it (job `monitor_traffic`) for a recipe whose traffic
log grew by NEW_REQUESTS requests since its last check; `rung monitor` is the same from
the command line.
"""

import json
import os
import time

import dagster as dg

from pipelines import paths
from pipelines.defs.factory import dagster_metadata
from pipelines.defs.partitions import recipe_for, recipe_partitions
from pipelines.lib import asset_cache
from pipelines.lib.asset_values import Table
from pipelines.lib.drift import MonitorError, format_drift_report, monitor_model
from pipelines.lib.traffic import log_files
from pipelines.recipe import RecipeError, load_recipe, recipe_path

NEW_REQUESTS = 50  # a check on fewer new requests would mostly repeat the last one

GROUP = "monitoring"
CHECK = "no_drift"


class DriftConfig(dg.Config):
    """probe_endpoint: a live `rung serve` URL to ask the version's probes through (default
    $RUNG_SERVE_URL; none: probes are only checked when they appear in the traffic)."""

    probe_endpoint: str | None = None


@dg.asset(
    partitions_def=recipe_partitions,
    group_name=GROUP,
    code_version=asset_cache.code_version(__name__),
    deps=["registered_adapter"],
    check_specs=[
        dg.AssetCheckSpec(
            CHECK,
            asset="traffic_drift",
            description="The champion's logged traffic looks like its held-out evaluation: "
            "no drift test alerts (too little traffic passes, saying so).",
        )
    ],
)
def traffic_drift(context: dg.AssetExecutionContext, config: DriftConfig) -> dg.MaterializeResult:
    """Drift of the recipe's champion's served traffic vs its reference profile (input and
    output lengths, labels/fields, validity, a domain classifier), logged as an MLflow run
    in the experiment rung-monitoring."""
    recipe = recipe_for(context)
    reference = f"models:/{recipe.registered_name}@champion"
    try:
        done = monitor_model(
            reference,
            traffic_dir=paths.traffic_dir(),
            dagster_run_id=context.run_id,
            probe_endpoint=config.probe_endpoint or os.environ.get("RUNG_SERVE_URL"),
        )
    except MonitorError as exc:
        raise dg.Failure(str(exc)) from None
    report = done.report
    context.log.info(format_drift_report(report))
    table = Table(
        columns=["test", "statistic", "p_value", "threshold", "alert", "detail"],
        rows=[
            [t.name, t.statistic, t.p_value, t.threshold, t.alert, t.detail] for t in report.tests
        ],
    )
    if report.status == "insufficient traffic":
        summary = f"{report.rows} requests logged: too few to tell (no test run)"
    elif report.alert:
        summary = "DRIFT: " + ", ".join(t.name for t in report.tests if t.alert)
    else:
        summary = f"no drift in {report.rows} requests"
    metadata = dagster_metadata(
        {
            "status": report.status,
            "model_version": report.model["uri"],
            "traffic_rows": report.rows,
            "reference_rows": report.reference_rows,
            "tests": table if report.tests else None,
            "validity_reference": report.validity.get("reference"),
            "validity_current": report.validity.get("current"),
            "mlflow_run_id": done.mlflow_run_id,
            # a challenger shadowing the champion (rung serve --shadow): the same requests
            "shadow_model": (report.shadow or {}).get("shadow"),
            "shadow_pairs": (report.shadow or {}).get("pairs"),
            "shadow_agreement": (report.shadow or {}).get("agreement"),
        }
    )
    return dg.MaterializeResult(
        metadata=metadata,
        data_version=dg.DataVersion(f"{report.model['uri']}:{report.rows}:{report.status}"),
        check_results=[
            dg.AssetCheckResult(
                check_name=CHECK,
                passed=not report.alert,
                severity=dg.AssetCheckSeverity.ERROR,
                description=summary,
                metadata={"status": report.status, "traffic_rows": report.rows},
            )
        ],
    )


monitor_traffic_job = dg.define_asset_job(
    "monitor_traffic",
    selection=[traffic_drift],
    partitions_def=recipe_partitions,
    description="Check one recipe's served champion for drift (the sensor new_traffic runs it).",
)


def logged_requests(recipe_id: str) -> int:
    """Requests in the traffic log of the recipe's registered model (rotated files too)."""
    try:
        name = load_recipe(recipe_path(recipe_id)).registered_name
    except RecipeError:  # a broken recipe file: nothing to watch until it is fixed
        return 0
    total = 0
    for file in log_files(paths.traffic_dir(), name):
        with file.open("rb") as handle:
            total += sum(1 for _ in handle)
    return total


@dg.sensor(
    job=monitor_traffic_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Checks a recipe's champion for drift once {NEW_REQUESTS} more requests "
    "were logged since its last check.",
)
def new_traffic(context: dg.SensorEvaluationContext):
    # cursor: {recipe id: requests logged at its last check}; a rotation that dropped
    # old files can shrink the count, which counts as a fresh start
    seen = json.loads(context.cursor) if context.cursor else {}
    for recipe_id in recipe_partitions.get_partition_keys():
        count = logged_requests(recipe_id)
        last = seen.get(recipe_id, 0)
        if count - last >= NEW_REQUESTS or count < last:
            seen[recipe_id] = count
            # the tick's time keeps the key unique when a rotation brings a count back
            run_key = f"{recipe_id}:{count}:{int(time.time())}"
            yield dg.RunRequest(run_key=run_key, partition_key=recipe_id)
    context.update_cursor(json.dumps(seen))
