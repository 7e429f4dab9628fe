"""Axolotl training in the trainer environment, tracked in one MLflow run."""

import dagster as dg

from pipelines.defs.factory import materialize, recipe_asset, reproduced_run, workdir
from pipelines.defs.inference import pipes_launch
from pipelines.defs.partitions import recipe_for
from pipelines.lib import tracking
from pipelines.lib import training_stage as stage
from pipelines.lib.asset_values import BaseModelValue, RawData, Split, TrainingRun, TrainingSet


@recipe_asset()
def training_run(
    context: dg.AssetExecutionContext,
    pipes_subprocess_client: dg.PipesSubprocessClient,
    base_model: BaseModelValue,
    raw_data: RawData,
    split: Split,
    training_set: TrainingSet,
) -> dg.Output[TrainingRun]:
    """Axolotl LoRA training in the trainer environment, tracked in one MLflow run."""
    recipe = recipe_for(context)
    return materialize(
        context,
        TrainingRun,
        inputs=stage.cache_inputs(recipe, base_model, raw_data, split, training_set),
        compute=lambda key: stage.train_adapter(
            recipe,
            base_model,
            raw_data,
            split,
            training_set,
            workdir(context),
            pipes_launch(context, pipes_subprocess_client),
            dagster_run_id=context.run_id,
            reproduces=reproduced_run(context),
        ),
        reusable=lambda value, key: tracking.run_exists(value.mlflow_run_id),
    )
