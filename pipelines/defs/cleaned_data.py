"""Rows validated, normalized, deduplicated and within sequence_len."""

import dagster as dg

from pipelines.defs.factory import materialize, recipe_asset, workdir
from pipelines.defs.partitions import recipe_for
from pipelines.lib.asset_values import BaseModelValue, CleanedData, RawData
from pipelines.lib.data_stages import clean_data


@recipe_asset()
def cleaned_data(
    context: dg.AssetExecutionContext, raw_data: RawData, base_model: BaseModelValue
) -> dg.Output[CleanedData]:
    """Rows validated (bad ones quarantined), normalized into one conversation schema,
    deduplicated (exact and near), and cut to rows that fit train.sequence_len."""
    recipe = recipe_for(context)
    return materialize(
        context,
        CleanedData,
        inputs={"raw_files": raw_data.source_sha256, "base_model": base_model.sha256},
        compute=lambda key: clean_data(recipe, raw_data, base_model, workdir(context)),
    )
