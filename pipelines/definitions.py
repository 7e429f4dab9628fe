"""The Dagster code location: loads definitions only."""

import dagster as dg

from pipelines.defs import assets
from pipelines.defs.resources import pipes_subprocess_client
from pipelines.lib.offline import apply_offline_env

apply_offline_env()

fine_tune_job = dg.define_asset_job(
    "fine_tune",
    selection=dg.AssetSelection.groups("rung"),
    partitions_def=assets.recipe_partitions,
    description="Materialize the whole graph for one recipe partition.",
    # Steps are few and long; one process avoids re-importing the stack per step.
    executor_def=dg.in_process_executor,
)

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([assets]),
    jobs=[fine_tune_job],
    resources={"pipes_subprocess_client": pipes_subprocess_client()},
)
