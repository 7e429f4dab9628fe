"""The recipe's base model, local and offline; its data version is the weights' sha256."""

import dagster as dg

from pipelines.defs.factory import output, recipe_asset, run_stage
from pipelines.defs.partitions import recipe_for
from pipelines.lib.asset_values import BaseModelValue
from pipelines.lib.data_stages import load_base_model


@recipe_asset()
def base_model(context: dg.AssetExecutionContext) -> dg.Output[BaseModelValue]:
    """The recipe's base model, local and offline; its data version is the weights' sha256."""
    return output(run_stage(lambda: load_base_model(recipe_for(context))))
