"""Watching what a served champion is asked: drift of its traffic against its reference.

`traffic_drift` (group "monitoring", so the `fine_tune` job never runs it) compares the
traffic `rung serve` logged for the recipe's registered model @champion with the
reference profile of that version (pipelines/lib/drift.py); its check `no_drift` fails
when any drift test alerts. Materialize it from the UI (pick the recipe's partition) or
on a schedule; `rung monitor` is the same from the command line.
"""

import dagster as dg

from pipelines import paths
from pipelines.defs.factory import dagster_metadata
from pipelines.defs.partitions import recipe_for, recipe_partitions
from pipelines.lib import asset_cache
from pipelines.lib.asset_values import Table
from pipelines.lib.drift import MonitorError, format_drift_report, monitor_model

GROUP = "monitoring"
CHECK = "no_drift"


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
def traffic_drift(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Drift of the recipe's champion's served traffic vs its reference profile (input and
    output lengths, labels/fields, validity, a domain classifier), logged as an MLflow run
    in the experiment rung-monitoring."""
    recipe = recipe_for(context)
    reference = f"models:/{recipe.registered_name}@champion"
    try:
        done = monitor_model(
            reference, traffic_dir=paths.traffic_dir(), dagster_run_id=context.run_id
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
