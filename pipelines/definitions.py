"""The Dagster code location: loads definitions only."""

import dagster as dg

from pipelines.defs import assets, checks, evaluation, training_set
from pipelines.defs.common import recipe_partitions
from pipelines.defs.resources import pipes_subprocess_client
from pipelines.lib.offline import apply_offline_env

apply_offline_env()
ASSET_MODULES = [assets, training_set, evaluation]

fine_tune_job = dg.define_asset_job(
    "fine_tune",
    selection=dg.AssetSelection.groups("rung"),
    partitions_def=recipe_partitions,
    description="Materialize the whole graph for one recipe partition.",
    # Steps are few and long; one process avoids re-importing the stack per step.
    executor_def=dg.in_process_executor,
)

defs = dg.Definitions(
    assets=dg.load_assets_from_modules(ASSET_MODULES),
    asset_checks=dg.load_asset_checks_from_modules([*ASSET_MODULES, checks]),
    jobs=[fine_tune_job],
    resources={"pipes_subprocess_client": pipes_subprocess_client()},
)
