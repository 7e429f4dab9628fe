"""The recipe's source files as versioned by DVC."""

import dagster as dg

from pipelines.defs.factory import output, recipe_asset, run_stage
from pipelines.defs.partitions import recipe_for
from pipelines.lib.asset_values import RawData
from pipelines.lib.data_stages import load_raw_data


@recipe_asset()
def raw_data(context: dg.AssetExecutionContext) -> dg.Output[RawData]:
    """The recipe's source files as versioned by DVC (data.dvc md5 = the data version)."""
    return output(run_stage(lambda: load_raw_data(recipe_for(context))))
