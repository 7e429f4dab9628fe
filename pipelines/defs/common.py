"""What every asset module shares: the recipe partitions and per-run folders."""

import json
from pathlib import Path

import dagster as dg

from pipelines import paths
from pipelines.launch import CACHE_TAG, REPRODUCES_TAG
from pipelines.lib import asset_cache, tracking
from pipelines.recipe import LoadedRecipe, list_recipe_ids, load_recipe, recipe_path

recipe_partitions = dg.StaticPartitionsDefinition(list_recipe_ids())


def recipe_for(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> LoadedRecipe:
    return load_recipe(recipe_path(context.partition_key))


def workdir(context: dg.AssetExecutionContext) -> Path:
    """runs/<recipe>/<dagster run id>/<asset>/ — every file an asset writes goes here."""
    folder = paths.runs_dir() / context.partition_key / context.run_id / context.asset_key.path[-1]
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def pipes_env(mlflow_run_id: str | None = None) -> dict[str, str]:
    """Environment of a trainer-env worker: the repo on its path, the run's MLflow target."""
    env = {"PYTHONPATH": str(paths.REPO_ROOT)}
    if mlflow_run_id:
        env.update(
            MLFLOW_TRACKING_URI=paths.mlflow_tracking_uri(),
            MLFLOW_EXPERIMENT_NAME=tracking.EXPERIMENT,
            MLFLOW_RUN_ID=mlflow_run_id,
        )
    return env


def run_inference(
    context: dg.AssetExecutionContext,
    client: dg.PipesSubprocessClient,
    folder: Path,
    *,
    base_model_dir: str,
    adapters: dict[str, str],
    requests: list[dict],
    mlflow_run_id: str | None = None,
    loss: dict | None = None,
) -> tuple[dict[str, str], dict]:
    """Answer generation requests in the trainer env (pipelines/worker/evaluate.py).

    Returns ({request key: answer}, {"losses": ..., "timings": ...}). `loss` optionally asks
    for held-out loss: {"heldout_file", "models", "sequence_len"}.
    """
    requests_file = folder / "requests.jsonl"
    requests_file.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in requests))
    loss = loss or {}
    client.run(
        context=context,
        command=[str(paths.TRAINER_PYTHON), "-m", "pipelines.worker.evaluate"],
        extras={
            "base_model_dir": base_model_dir,
            "adapters": adapters,
            "requests_file": str(requests_file),
            "answers_file": str(folder / "answers.jsonl"),
            "result_file": str(folder / "inference.json"),
            "heldout_file": loss.get("heldout_file"),
            "loss_models": loss.get("models", []),
            "sequence_len": loss.get("sequence_len", 0),
            "batch_size": recipe_for(context).spec.eval.batch_size,
        },
        env=pipes_env(mlflow_run_id),
    )
    with (folder / "answers.jsonl").open(encoding="utf-8") as handle:
        answers = {a["key"]: a["output"] for a in map(json.loads, handle)}
    return answers, json.loads((folder / "inference.json").read_text())


def cache_mode(context: dg.AssetExecutionContext) -> str:
    """'use' (default), 'refresh' (`rung run --force`) or 'off' (a reproduction)."""
    return context.run.tags.get(CACHE_TAG, "use")


def reproduced_run(context: dg.AssetExecutionContext) -> str | None:
    """The MLflow run this Dagster run reproduces, if it is a reproduction."""
    return context.run.tags.get(REPRODUCES_TAG)


def reuse(
    context: dg.AssetExecutionContext, recipe: LoadedRecipe, inputs: dict
) -> tuple[str, dict | None]:
    """This asset's cache key for `inputs`, and the stored output when it can be reused."""
    asset = context.asset_key.path[-1]
    key = asset_cache.cache_key(asset, recipe.spec, inputs)
    hit = asset_cache.lookup(recipe.id, asset, key) if cache_mode(context) == "use" else None
    if hit is None:
        return key, None
    context.log.info(
        f"{asset}: code, recipe parts and inputs unchanged since Dagster run "
        f"{hit['dagster_run_id']}; reusing its outputs (cache key {key})"
    )
    return key, {**hit["value"], "reused_from_dagster_run": hit["dagster_run_id"]}


def remember(
    context: dg.AssetExecutionContext, recipe: LoadedRecipe, key: str, value: dict, files: list[str]
) -> None:
    """Store the output under its key, unless this run must leave the cache alone."""
    if cache_mode(context) != "off":
        asset_cache.store(recipe.id, context.asset_key.path[-1], key, value, files, context.run_id)


def reused_output(
    value: dict, data_version: str, key: str, extra_metadata: dict | None = None
) -> dg.Output[dict]:
    """A reused output: same value and data version, metadata says where it came from."""
    scalars = {
        k: v
        for k, v in value.items()
        if isinstance(v, int | float | str | bool) and not k.endswith(("_file", "_dir"))
    }
    return dg.Output(
        value,
        data_version=dg.DataVersion(data_version),
        metadata={**scalars, **(extra_metadata or {}), "cache": "reused", "cache_key": key},
    )
