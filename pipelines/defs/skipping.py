"""Steps that may rightly produce nothing: the record of why, on the asset itself."""

import dagster as dg


def skip(context: dg.AssetExecutionContext, reason: str, **metadata) -> None:
    """Materialize nothing (downstream steps are skipped, the run still succeeds) and leave
    an observation on the asset saying why, visible in the UI next to its history."""
    context.log.info(reason)
    context.log_event(
        dg.AssetObservation(
            asset_key=context.asset_key,
            partition=context.partition_key,
            description=reason,
            metadata=metadata,
        )
    )
