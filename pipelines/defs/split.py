"""Train and held-out files, and the data card."""

import dagster as dg

from pipelines.defs.factory import materialize, recipe_asset, workdir
from pipelines.defs.partitions import recipe_for
from pipelines.lib.asset_values import CleanedData, RawData, Split
from pipelines.lib.data_stages import split_data


@recipe_asset()
def split(
    context: dg.AssetExecutionContext, raw_data: RawData, cleaned_data: CleanedData
) -> dg.Output[Split]:
    """Train and held-out files: hash-based, group-aware, stable as data grows; and the
    run's data card. The asset checks (pipelines/defs/checks.py) gate training on it."""
    recipe = recipe_for(context)
    return materialize(
        context,
        Split,
        inputs={"cleaned": cleaned_data.sha256, "raw": raw_data.data_md5},
        compute=lambda key: split_data(recipe, raw_data, cleaned_data, workdir(context)),
    )
