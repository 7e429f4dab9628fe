"""The adapter that passed the gate, registered in MLflow."""

from collections.abc import Iterator

import dagster as dg

from pipelines.defs.factory import output, recipe_asset, run_stage
from pipelines.defs.partitions import recipe_for
from pipelines.defs.skipping import skip
from pipelines.lib.asset_values import BaseModelValue, Evaluation, Split, TrainingRun
from pipelines.lib.registration_stage import not_registered_reason, register_shipped_adapter


@recipe_asset(output_required=False)
def registered_adapter(
    context: dg.AssetExecutionContext,
    base_model: BaseModelValue,
    split: Split,
    training_run: TrainingRun,
    evaluation: Evaluation,
) -> Iterator[dg.Output]:
    """The adapter that passed the gate: a version of the recipe's registered model in MLflow
    (loadable as models:/<name>@champion), with the challenger/champion aliases moved. On
    NO-SHIP nothing is registered or materialized; an observation says why."""
    reason = not_registered_reason(evaluation)
    if reason:
        skip(context, reason, verdict=evaluation.verdict["label"], registered=False)
        return
    done = run_stage(
        lambda: register_shipped_adapter(
            recipe_for(context),
            base_model,
            split,
            training_run,
            evaluation,
            dagster_run_id=context.run_id,
        )
    )
    for move in done.alias_moves:
        context.log.info(
            f"alias {move['alias']}: v{move['previous'] or '-'} -> v{move['version']} "
            f"({move['reason']})"
        )
    yield output(done)
