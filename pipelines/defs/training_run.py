"""Axolotl training in the trainer environment (a local subprocess, or a Kubernetes pod
when RUNG_TRAINER=k8s), tracked in one MLflow run."""

import dagster as dg

from pipelines.defs.factory import cache_mode, materialize, recipe_asset, reproduced_run, workdir
from pipelines.defs.inference import pipes_k8s_launch, pipes_launch
from pipelines.defs.partitions import recipe_for
from pipelines.defs.resources import TrainerBackend
from pipelines.lib import k8s_pod, tracking
from pipelines.lib import training_stage as stage
from pipelines.lib.asset_values import BaseModelValue, RawData, Split, TrainingRun, TrainingSet


@recipe_asset()
def training_run(
    context: dg.AssetExecutionContext,
    pipes_subprocess_client: dg.PipesSubprocessClient,
    trainer_backend: TrainerBackend,
    base_model: BaseModelValue,
    raw_data: RawData,
    split: Split,
    training_set: TrainingSet,
) -> dg.Output[TrainingRun]:
    """Axolotl LoRA training in the trainer environment, tracked in one MLflow run."""
    recipe = recipe_for(context)
    train = recipe.spec.train
    settings = trainer_backend.k8s_settings()  # None: the local subprocess

    def train_adapter(key: str) -> TrainingRun:
        folder, launch, host = (
            workdir(context),
            pipes_launch(context, pipes_subprocess_client),
            None,
        )
        if settings:  # a pod, which reads and writes these through its volume
            pod_files = {"run folder": folder, "base model": base_model.path}
            k8s_pod.require_on_volume(settings, {**pod_files, "rows": training_set.file})
            host = k8s_pod.trainer_host(settings, train)
            client = trainer_backend.k8s_client()
            launch = pipes_k8s_launch(context, client, settings, recipe.id, train)
        return stage.train_adapter(
            recipe,
            base_model,
            raw_data,
            split,
            training_set,
            folder,
            launch,
            dagster_run_id=context.run_id,
            reproduces=reproduced_run(context),
            host=host,
            # --force and reproductions train from scratch: no resume, no attempt record
            cache_key=key if cache_mode(context) == "use" else None,
            log=context.log.info,
        )

    return materialize(
        context,
        TrainingRun,
        inputs=stage.cache_inputs(recipe, base_model, raw_data, split, training_set),
        compute=train_adapter,
        reusable=lambda value, key: tracking.run_exists(value.mlflow_run_id),
    )
