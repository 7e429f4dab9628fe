"""The Dagster code location: loads definitions only."""

import warnings

import dagster as dg

from pipelines import defs
from pipelines.defs.console import rung_console
from pipelines.defs.monitoring import monitor_traffic_job, new_traffic
from pipelines.defs.partitions import recipe_partitions
from pipelines.defs.resources import TrainerBackend, pipes_subprocess_client
from pipelines.lib.offline import apply_offline_env

apply_offline_env()
# rung uses a few beta/preview Dagster APIs on purpose; the warning on every run is noise.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

fine_tune_job = dg.define_asset_job(
    "fine_tune",
    selection=dg.AssetSelection.groups("rung"),
    partitions_def=recipe_partitions,
    description="Materialize the whole graph for one recipe partition.",
    # Steps are few and long; one process avoids re-importing the stack per step.
    executor_def=dg.in_process_executor,
)

defs = dg.Definitions(
    assets=dg.load_assets_from_package_module(defs),
    asset_checks=dg.load_asset_checks_from_package_module(defs),
    jobs=[fine_tune_job, monitor_traffic_job],
    sensors=[new_traffic],
    resources={
        "pipes_subprocess_client": pipes_subprocess_client(),
        "trainer_backend": TrainerBackend.from_env(),  # RUNG_TRAINER=k8s: a pod
    },
    loggers={"console": rung_console},  # one line per event, a failure as its cause
)
