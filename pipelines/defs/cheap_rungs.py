"""The rungs below fine-tuning, asked before anything is trained."""

import dagster as dg

from pipelines.defs.factory import materialize, recipe_asset, reproduced_run, workdir
from pipelines.defs.inference import pipes_infer
from pipelines.defs.partitions import recipe_for
from pipelines.lib import cheap_rungs_stage as stage
from pipelines.lib import tracking
from pipelines.lib.asset_values import BaseModelValue, CheapRungs, RawData, Split
from pipelines.lib.training_stage import lineage_tags


@recipe_asset()
def cheap_rungs(
    context: dg.AssetExecutionContext,
    pipes_subprocess_client: dg.PipesSubprocessClient,
    base_model: BaseModelValue,
    raw_data: RawData,
    split: Split,
) -> dg.Output[CheapRungs]:
    """Baseline, few-shot and retrieval answer the held-out rows before any training; when
    one reaches eval.target the climb stops there (training is skipped, its prompt ships)."""
    recipe = recipe_for(context)

    def compute(key: str) -> CheapRungs:
        folder = workdir(context)
        infer = pipes_infer(
            context,
            pipes_subprocess_client,
            folder,
            base_model_dir=base_model.path,
            batch_size=recipe.spec.eval.batch_size,
        )
        tags = lineage_tags(recipe, base_model, raw_data, split, None, reproduced_run(context))
        return stage.run_cheap_rungs(
            recipe,
            base_model,
            raw_data,
            split,
            folder,
            infer,
            dagster_run_id=context.run_id,
            tags=tags,
        )

    return materialize(
        context,
        CheapRungs,
        inputs=stage.cache_inputs(recipe, base_model, split),
        compute=compute,
        reusable=lambda value, key: tracking.run_exists(value.mlflow_run_id),
    )
