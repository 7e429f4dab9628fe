"""The asset graph, one partition per recipe. Assets are thin: unpack, call lib/, report."""


import json
from pathlib import Path
from typing import Any

import dagster as dg

from pipelines import paths
from pipelines.lib import dataset, tracking
from pipelines.lib.axolotl_config import render_axolotl_config, write_axolotl_config
from pipelines.lib.base_model import resolve_base_model
from pipelines.lib.data_version import recorded_md5, workspace_matches_dvc
from pipelines.lib.report import samples_markdown
from pipelines.recipe import LoadedRecipe, list_recipe_ids, load_recipe, recipe_path

recipe_partitions = dg.StaticPartitionsDefinition(list_recipe_ids())
TRAINER_VERSIONS = ("axolotl", "transformers", "peft", "torch")


def _recipe(context: dg.AssetExecutionContext) -> LoadedRecipe:
    return load_recipe(recipe_path(context.partition_key))


def _workdir(context: dg.AssetExecutionContext) -> Path:
    """runs/<recipe>/<dagster run id>/<asset>/ — every file an asset writes goes here."""
    folder = paths.runs_dir() / context.partition_key / context.run_id / context.asset_key.path[-1]
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dg.asset(partitions_def=recipe_partitions, group_name="rung")
def base_model(context: dg.AssetExecutionContext) -> dg.Output[dict]:
    """The recipe's base model, local and offline; its data version is the weights' sha256."""
    model = resolve_base_model(_recipe(context).spec.model.base_model)
    value = {"id": model.id, "path": str(model.path), "sha256": model.sha256}
    return dg.Output(
        value,
        data_version=dg.DataVersion(model.sha256),
        metadata={"model_id": model.id, "path": str(model.path), "weights_sha256": model.sha256},
    )


@dg.asset(partitions_def=recipe_partitions, group_name="rung")
def raw_data(context: dg.AssetExecutionContext) -> dg.Output[dict]:
    """The recipe's source files as versioned by DVC (data.dvc md5 = the data version)."""
    recipe = _recipe(context)
    if not workspace_matches_dvc():
        raise dg.Failure(
            "data/ differs from the version recorded in data.dvc: run `dvc add data` to record "
            "a new version, or `dvc checkout data.dvc` to restore the recorded one"
        )
    md5 = recorded_md5()
    sources = [paths.REPO_ROOT / s for s in recipe.spec.data.sources]
    files = {str(s.relative_to(paths.REPO_ROOT)): dataset.sha256_file(s) for s in sources}
    rows = sum(1 for s in sources for _ in s.open("rb"))
    return dg.Output(
        {"sources": [str(s) for s in sources], "data_md5": md5, "files": files},
        data_version=dg.DataVersion(md5),
        metadata={"data_dvc_md5": md5, "rows": rows, "files": dg.MetadataValue.json(files)},
    )


@dg.asset(partitions_def=recipe_partitions, group_name="rung")
def cleaned_data(context: dg.AssetExecutionContext, raw_data: dict) -> dg.Output[dict]:
    """Rows normalized into conversations; bad rows quarantined, exact duplicates removed."""
    data = _recipe(context).spec.data
    parsed, bad = dataset.read_jsonl_sources([Path(s) for s in raw_data["sources"]])
    result = dataset.clean_rows(parsed, bad, data)
    folder = _workdir(context)
    quarantine_file = folder / "quarantine.jsonl"
    result.quarantine.to_json(quarantine_file, orient="records", lines=True, force_ascii=False)
    counts = {
        "rows_in": result.rows_in,
        "kept": len(result.rows),
        "quarantined": len(result.quarantine),
        "duplicates_removed": result.duplicates_removed,
        "sampled_out": result.sampled_out,
    }
    if result.rows.empty:
        raise dg.Failure(f"no usable rows left after cleaning {raw_data['sources']}: {counts}; "
                         f"see reasons in {quarantine_file}")
    sha = dataset.write_conversations(result.rows, folder / "cleaned.jsonl")
    return dg.Output(
        {"file": str(folder / "cleaned.jsonl"), "sha256": sha, "counts": counts},
        data_version=dg.DataVersion(sha),
        metadata={**counts, "sha256": sha, "quarantine_file": str(quarantine_file)},
    )


@dg.asset(partitions_def=recipe_partitions, group_name="rung")
def split(context: dg.AssetExecutionContext, cleaned_data: dict) -> dg.Output[dict]:
    """Train and held-out files; a row's side is fixed by its content hash and the seed."""
    data = _recipe(context).spec.data
    rows = dataset.read_conversations(Path(cleaned_data["file"]))
    train, heldout = dataset.split_rows(rows, data)
    leaked = set(train["id"]) & set(heldout["id"])
    if leaked or train.empty or heldout.empty:
        raise dg.Failure(
            f"split is unusable: {len(train)} train rows, {len(heldout)} held-out rows, "
            f"{len(leaked)} rows on both sides; adjust data.heldout_fraction or data.max_rows"
        )
    folder = _workdir(context)
    value = {
        "train_file": str(folder / "train.jsonl"),
        "heldout_file": str(folder / "heldout.jsonl"),
        "train_rows": len(train),
        "heldout_rows": len(heldout),
    }
    value["train_sha256"] = dataset.write_conversations(train, Path(value["train_file"]))
    value["heldout_sha256"] = dataset.write_conversations(heldout, Path(value["heldout_file"]))
    return dg.Output(
        value,
        data_version=dg.DataVersion(value["train_sha256"][:32] + value["heldout_sha256"][:32]),
        metadata={k: v for k, v in value.items() if not k.endswith("_file")},
    )


def _trainer_versions(pipes: dg.PipesSubprocessClient) -> dict[str, str]:
    """Package versions in the trainer environment (tags for lineage)."""
    import subprocess

    code = (
        "import importlib.metadata as m, json; "
        f"print(json.dumps({{p: m.version(p) for p in {TRAINER_VERSIONS!r}}}))"
    )
    out = subprocess.run(
        [str(paths.TRAINER_PYTHON), "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)


def _pipes_env(mlflow_run_id: str) -> dict[str, str]:
    return {
        "PYTHONPATH": str(paths.REPO_ROOT),
        "MLFLOW_TRACKING_URI": paths.mlflow_tracking_uri(),
        "MLFLOW_EXPERIMENT_NAME": tracking.EXPERIMENT,
        "MLFLOW_RUN_ID": mlflow_run_id,
    }


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


@dg.asset(partitions_def=recipe_partitions, group_name="rung")
def training_run(
    context: dg.AssetExecutionContext,
    pipes_subprocess_client: dg.PipesSubprocessClient,
    base_model: dict,
    raw_data: dict,
    split: dict,
) -> dg.Output[dict]:
    """Axolotl LoRA training in the trainer environment, tracked in one MLflow run."""
    recipe = _recipe(context)
    folder = _workdir(context)
    tags = {
        "rung.recipe_sha256": recipe.sha256,
        "rung.data_dvc_md5": raw_data["data_md5"],
        "rung.base_model": base_model["id"],
        "rung.base_model_sha256": base_model["sha256"],
        "rung.train_sha256": split["train_sha256"],
        "rung.heldout_sha256": split["heldout_sha256"],
        "rung.method": recipe.spec.train.method,
        **{f"rung.{k}": v for k, v in tracking.git_state().items()},
        **{f"rung.version.{k}": v for k, v in _trainer_versions(pipes_subprocess_client).items()},
    }
    run_id = tracking.start_run(recipe.id, context.run_id, tags)
    with tracking.failing_marks_run(run_id) as client:
        config = render_axolotl_config(
            recipe.spec.train,
            base_model_dir=Path(base_model["path"]),
            train_file=Path(split["train_file"]),
            output_dir=folder,
            mlflow_tracking_uri=paths.mlflow_tracking_uri(),
            mlflow_experiment=tracking.EXPERIMENT,
        )
        config_file = write_axolotl_config(config, folder / "axolotl.yml")
        client.log_artifact(run_id, str(recipe.path), "recipe")
        client.log_artifact(run_id, str(config_file), "axolotl")
        tracking.log_params(client, run_id, tracking.flatten("recipe", recipe.spec.model_dump()))
        adapter_dir = Path(config["output_dir"])
        log_file = folder / "train.log"
        try:
            pipes_subprocess_client.run(
                context=context,
                command=[str(paths.TRAINER_PYTHON), "-m", "pipelines.worker.train"],
                extras={
                    "axolotl_config": str(config_file),
                    "log_file": str(log_file),
                    "adapter_dir": str(adapter_dir),
                },
                env=_pipes_env(run_id),
            )
        except Exception as exc:  # Pipes raises a private error type when the worker fails
            raise dg.Failure(
                f"training failed for recipe {recipe.id}; MLflow run {run_id} marked FAILED; "
                f"last lines of {log_file}:\n{_tail(log_file)}"
            ) from exc
        client.log_artifact(run_id, str(log_file), "logs")
        history = client.get_metric_history(run_id, "train_loss")
        losses = client.get_metric_history(run_id, "loss")
        summary = {
            "steps": history[-1].step if history else (losses[-1].step if losses else 0),
            "final_train_loss": losses[-1].value if losses else None,
            "mean_train_loss": history[-1].value if history else None,
        }
    value = {
        "mlflow_run_id": run_id,
        "adapter_dir": str(adapter_dir),
        "axolotl_config": str(config_file),
        "log_file": str(log_file),
        **summary,
    }
    return dg.Output(
        value,
        metadata={
            **{k: v for k, v in value.items() if v is not None},
            "mlflow_run_id": dg.MetadataValue.text(run_id),
            "axolotl_yaml": dg.MetadataValue.md(f"```yaml\n{config_file.read_text()}\n```"),
        },
    )


@dg.asset(partitions_def=recipe_partitions, group_name="rung")
def evaluation(
    context: dg.AssetExecutionContext,
    pipes_subprocess_client: dg.PipesSubprocessClient,
    base_model: dict,
    split: dict,
    training_run: dict,
) -> dg.Output[dict]:
    """Held-out loss and perplexity of base vs tuned, and sample answers of both."""
    recipe = _recipe(context)
    run_id = training_run["mlflow_run_id"]
    result_file = _workdir(context) / "evaluation.json"
    with tracking.failing_marks_run(run_id) as client:
        pipes_subprocess_client.run(
            context=context,
            command=[str(paths.TRAINER_PYTHON), "-m", "pipelines.worker.evaluate"],
            extras={
                "base_model_dir": base_model["path"],
                "adapter_dir": training_run["adapter_dir"],
                "heldout_file": split["heldout_file"],
                "result_file": str(result_file),
                "sequence_len": recipe.spec.train.sequence_len,
                "max_new_tokens": recipe.spec.eval.max_new_tokens,
                "batch_size": recipe.spec.eval.batch_size,
                "num_samples": recipe.spec.eval.num_samples,
            },
            env=_pipes_env(run_id),
        )
        result: dict[str, Any] = json.loads(result_file.read_text())
        tracking.log_metrics(client, run_id, result["metrics"])
        client.log_artifact(run_id, str(result_file), "evaluation")
    return dg.Output(
        {**result["metrics"], "result_file": str(result_file)},
        metadata={
            **result["metrics"],
            "samples": dg.MetadataValue.md(samples_markdown(result["samples"])),
        },
    )


@dg.asset(partitions_def=recipe_partitions, group_name="rung")
def registered_adapter(
    context: dg.AssetExecutionContext, training_run: dict, evaluation: dict
) -> dg.Output[dict]:
    """The adapter logged to the run's MLflow artifacts; the run is then FINISHED."""
    run_id = training_run["mlflow_run_id"]
    with tracking.failing_marks_run(run_id) as client:
        adapter_dir = Path(training_run["adapter_dir"])
        for name in ("adapter_model.safetensors", "adapter_config.json"):
            client.log_artifact(run_id, str(adapter_dir / name), "adapter")
        artifact_uri = client.get_run(run_id).info.artifact_uri + "/adapter"
    tracking.finish_run(run_id)
    return dg.Output(
        {"mlflow_run_id": run_id, "adapter_uri": artifact_uri, "adapter_dir": str(adapter_dir)},
        metadata={"adapter_uri": artifact_uri, "mlflow_run_id": run_id},
    )

