"""The ladder evaluation and the ship gate."""

import dagster as dg

from pipelines.defs.factory import materialize, recipe_asset, reproduced_run, workdir
from pipelines.defs.inference import pipes_infer
from pipelines.defs.partitions import recipe_for, recipe_partitions
from pipelines.lib import evaluation_stage as stage
from pipelines.lib.asset_values import (
    BaseModelValue,
    CheapRungs,
    Evaluation,
    Split,
    TrainingRun,
    TrainingSet,
)


@recipe_asset()
def evaluation(
    context: dg.AssetExecutionContext,
    pipes_subprocess_client: dg.PipesSubprocessClient,
    base_model: BaseModelValue,
    split: Split,
    cheap_rungs: CheapRungs,
    training_set: TrainingSet,
    training_run: TrainingRun,
) -> dg.Output[Evaluation]:
    """The tune beside the cheap rungs (their answers reused) on the same held-out rows;
    probes; overfitting; verdict."""
    recipe = recipe_for(context)

    def compute(key: str) -> Evaluation:
        folder = workdir(context)
        infer = pipes_infer(
            context,
            pipes_subprocess_client,
            folder,
            base_model_dir=base_model.path,
            batch_size=recipe.spec.eval.batch_size,
        )
        return stage.run_evaluation(
            recipe,
            base_model,
            split,
            cheap_rungs,
            training_set,
            training_run,
            folder,
            infer,
            key=key,
            reproduces=reproduced_run(context),
        )

    return materialize(
        context,
        Evaluation,
        inputs=stage.cache_inputs(base_model, split, cheap_rungs, training_set, training_run),
        compute=compute,
        reusable=lambda value, key: stage.still_logged(value, key, training_run),
    )


@dg.asset_check(
    asset=evaluation,
    partitions_def=recipe_partitions,
    description="The verdict: passes on SHIP; on NO-SHIP warns (an honest outcome, not a "
    "crash) and registered_adapter registers nothing.",
)
def ship_gate(evaluation: Evaluation) -> dg.AssetCheckResult:
    verdict = evaluation.verdict
    return dg.AssetCheckResult(
        passed=evaluation.ships,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "verdict": verdict["label"],
            "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in verdict["reasons"])),
        },
        description=f"{verdict['label']}: " + "; ".join(verdict["reasons"]),
    )
