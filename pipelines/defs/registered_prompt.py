"""The prompt that ships when a cheaper rung reached the target."""

from collections.abc import Iterator

import dagster as dg

from pipelines.defs.factory import output, recipe_asset, reproduced_run, run_stage
from pipelines.defs.partitions import recipe_for
from pipelines.defs.skipping import skip
from pipelines.lib.asset_values import BaseModelValue, CheapRungs, RawData, Split
from pipelines.lib.prompt_registry import register_winning_prompt
from pipelines.lib.training_stage import lineage_tags


@recipe_asset(output_required=False)
def registered_prompt(
    context: dg.AssetExecutionContext,
    base_model: BaseModelValue,
    raw_data: RawData,
    split: Split,
    cheap_rungs: CheapRungs,
) -> Iterator[dg.Output]:
    """When the climb stopped before training, the winning rung's prompt (system prompt,
    few-shot examples or retrieval template) as a version in MLflow's prompt registry,
    @champion; otherwise nothing (the tune decides what ships)."""
    if not cheap_rungs.winner:
        skip(context, f"no prompt registered: {cheap_rungs.decision}", decision=cheap_rungs.label)
        return
    recipe = recipe_for(context)
    lineage = lineage_tags(recipe, base_model, raw_data, split, None, reproduced_run(context))
    done = run_stage(lambda: register_winning_prompt(recipe, cheap_rungs, split, lineage))
    context.log.info(f"{cheap_rungs.decision}: registered {done.uri} (@champion)")
    yield output(done)
