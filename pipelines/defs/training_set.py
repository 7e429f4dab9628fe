"""The rows the trainer learns from, by training method."""

from collections.abc import Iterator

import dagster as dg

from pipelines.defs.factory import materialize, recipe_asset, run_stage, workdir
from pipelines.defs.inference import pipes_infer
from pipelines.defs.partitions import recipe_for
from pipelines.defs.skipping import skip
from pipelines.lib import training_set_stage as stage
from pipelines.lib.asset_values import BaseModelValue, CheapRungs, Split, TrainingSet


@recipe_asset(output_required=False)
def training_set(
    context: dg.AssetExecutionContext,
    pipes_subprocess_client: dg.PipesSubprocessClient,
    base_model: BaseModelValue,
    split: Split,
    cheap_rungs: CheapRungs,
) -> Iterator[dg.Output[TrainingSet]]:
    """SFT rows as split; DPO pairs (from data or on-policy); or teacher-labelled rows;
    plus, with train.rehearsal, the base model's own answers to unrelated prompts. Nothing
    (so no training) when a cheaper rung already reached eval.target."""
    if cheap_rungs.winner:
        skip(context, f"not trained: {cheap_rungs.decision}", decision=cheap_rungs.label)
        return
    recipe = recipe_for(context)
    teacher = run_stage(lambda: stage.find_teacher(recipe))

    def compute(key: str) -> TrainingSet:
        folder = workdir(context)
        infer = pipes_infer(
            context,
            pipes_subprocess_client,
            folder,
            base_model_dir=base_model.path,
            batch_size=recipe.spec.eval.batch_size,
        )
        return stage.build_training_set(
            recipe, base_model, split, teacher, folder, infer, log=context.log.info
        )

    yield materialize(
        context,
        TrainingSet,
        inputs=stage.cache_inputs(recipe, base_model, split, teacher),
        compute=compute,
    )
