"""Data and training assets, one partition per recipe. Thin: unpack, call lib/, report."""

from pathlib import Path

import dagster as dg

from pipelines import paths
from pipelines.defs.common import (
    pipes_env,
    recipe_for,
    recipe_partitions,
    remember,
    reproduced_run,
    reuse,
    reused_output,
    workdir,
)
from pipelines.lib import asset_cache, dataset, tracking, trainer_env
from pipelines.lib.axolotl_config import render_axolotl_config, write_axolotl_config
from pipelines.lib.base_model import adapter_sha256, resolve_adapter, resolve_base_model
from pipelines.lib.data_card import build_data_card
from pipelines.lib.data_lineage import log_data_lineage
from pipelines.lib.data_version import DataVersionError, current_data_version
from pipelines.lib.raw_sources import count_rows
from pipelines.lib.token_length import ChatTokenCounter


@dg.asset(
    partitions_def=recipe_partitions,
    group_name="rung",
    code_version=asset_cache.code_version("base_model"),
)
def base_model(context: dg.AssetExecutionContext) -> dg.Output[dict]:
    """The recipe's base model, local and offline; its data version is the weights' sha256."""
    model = resolve_base_model(recipe_for(context).spec.model.base_model)
    value = {
        "id": model.id,
        "path": str(model.path),
        "sha256": model.sha256,
        "weights": model.weights,
    }
    return dg.Output(
        value,
        data_version=dg.DataVersion(model.sha256),
        metadata={"model_id": model.id, "path": str(model.path), "weights_sha256": model.sha256},
    )


@dg.asset(
    partitions_def=recipe_partitions,
    group_name="rung",
    code_version=asset_cache.code_version("raw_data"),
)
def raw_data(context: dg.AssetExecutionContext) -> dg.Output[dict]:
    """The recipe's source files as versioned by DVC (data.dvc md5 = the data version)."""
    recipe = recipe_for(context)
    try:
        md5 = current_data_version()
    except DataVersionError as exc:
        raise dg.Failure(str(exc)) from None
    root = paths.sources_root()  # the repository, or a reproduction's restored data version
    sources = [root / s for s in recipe.spec.data.sources]
    files = {str(s.relative_to(root)): dataset.sha256_file(s) for s in sources}
    rows = sum(count_rows(s) for s in sources)
    return dg.Output(
        {"sources": [str(s) for s in sources], "data_md5": md5, "files": files},
        data_version=dg.DataVersion(md5),
        metadata={"data_dvc_md5": md5, "rows": rows, "files": dg.MetadataValue.json(files)},
    )


@dg.asset(
    partitions_def=recipe_partitions,
    group_name="rung",
    code_version=asset_cache.code_version("cleaned_data"),
)
def cleaned_data(
    context: dg.AssetExecutionContext, raw_data: dict, base_model: dict
) -> dg.Output[dict]:
    """Rows validated (bad ones quarantined), normalized into one conversation schema,
    deduplicated (exact and near), and cut to rows that fit train.sequence_len."""
    recipe = recipe_for(context)
    key, reused = reuse(
        context, recipe, {"raw_files": raw_data["files"], "base_model": base_model["sha256"]}
    )
    if reused is not None:
        return reused_output(reused, reused["sha256"], key)
    data, sources = recipe.spec.data, [Path(s) for s in raw_data["sources"]]
    result = dataset.clean_sources(
        sources,
        data,
        count_tokens=ChatTokenCounter(Path(base_model["path"])).count,
        sequence_len=recipe.spec.train.sequence_len,
        # As the recipe names them: the same rows (and hashes) wherever the data root is.
        names=list(data.sources),
    )
    value = {"recipe_id": recipe.id, **dataset.write_clean_outputs(result, workdir(context))}
    context.log.info(f"cleaning counts: {value['counts']}; seconds per stage: {value['timings_s']}")
    problem = result.failure(data.max_bad_fraction)
    if problem:
        raise dg.Failure(
            f"recipe {recipe.id}: {problem}; every bad row with its reason is in "
            f"{value['quarantine_file']}"
        )
    remember(context, recipe, key, value, [value["file"]])
    return dg.Output(
        value,
        data_version=dg.DataVersion(value["sha256"]),
        metadata={
            "cache": "computed",
            "cache_key": key,
            **value["counts"],
            "sha256": value["sha256"],
            "counts_reconcile": result.reconciles(),
            "drop_reasons": dg.MetadataValue.json(value["drop_reasons"]),
            "quarantine_file": dg.MetadataValue.path(value["quarantine_file"]),
            "dropped_file": dg.MetadataValue.path(value["dropped_file"]),
        },
    )


@dg.asset(
    partitions_def=recipe_partitions,
    group_name="rung",
    code_version=asset_cache.code_version("split"),
)
def split(context: dg.AssetExecutionContext, raw_data: dict, cleaned_data: dict) -> dg.Output[dict]:
    """Train and held-out files: hash-based, group-aware, stable as data grows; and the
    run's data card. The asset checks (pipelines/defs/checks.py) gate training on it."""
    recipe = recipe_for(context)
    key, reused = reuse(
        context, recipe, {"cleaned": cleaned_data["sha256"], "raw": raw_data["data_md5"]}
    )
    if reused is not None:
        return reused_output(reused, _split_version(reused), key)
    data, folder = recipe.spec.data, workdir(context)
    rows = dataset.read_jsonl(Path(cleaned_data["file"]))
    result = dataset.split_rows(rows, data)
    value = {
        "recipe_id": recipe.id,
        **dataset.write_split(result, folder),
        "cleaned_sha256": cleaned_data["sha256"],
        "label_field": data.label_field,
    }
    card = build_data_card(
        folder / "data_card",
        recipe_id=recipe.id,
        counts=cleaned_data["counts"],
        drop_reasons=cleaned_data["drop_reasons"],
        train=result.train,
        heldout=result.heldout,
        hashes={
            "data.dvc md5 (raw)": raw_data["data_md5"],
            "cleaned sha256": value["cleaned_sha256"],
            "train sha256": value["train_sha256"],
            "held-out sha256": value["heldout_sha256"],
        },
        sequence_len=recipe.spec.train.sequence_len,
        notes=[f"rebalanced training rows ({data.balance.rebalance}): {value['rebalanced']}"]
        if "rebalanced" in value
        else [],
    )
    value["data_card"] = str(card.files[0])
    remember(
        context,
        recipe,
        key,
        value,
        [value["train_file"], value["heldout_file"], value["data_card"]],
    )
    return dg.Output(
        value,
        data_version=dg.DataVersion(_split_version(value)),
        metadata={
            "cache": "computed",
            "cache_key": key,
            **{
                k: v
                for k, v in value.items()
                if not k.endswith(("_file", "card", "rebalanced")) and v is not None
            },
            "data_card": dg.MetadataValue.md(card.embedded),
        },
    )


def _split_version(value: dict) -> str:
    return value["train_sha256"][:32] + value["heldout_sha256"][:32]


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dg.asset(
    partitions_def=recipe_partitions,
    group_name="rung",
    code_version=asset_cache.code_version("training_run"),
)
def training_run(
    context: dg.AssetExecutionContext,
    pipes_subprocess_client: dg.PipesSubprocessClient,
    base_model: dict,
    raw_data: dict,
    split: dict,
    training_set: dict,
) -> dg.Output[dict]:
    """Axolotl LoRA training in the trainer environment, tracked in one MLflow run."""
    recipe = recipe_for(context)
    train = recipe.spec.train
    if train.adapter == "qlora" and not trainer_env.cuda_available():
        raise dg.Failure(
            f"recipe {recipe.id}: QLoRA (train.adapter: qlora) loads the base model in 4 bits "
            "with bitsandbytes, which needs a CUDA GPU, and this machine has none. Run it on a "
            "GPU machine, or use train.adapter: lora here."
        )
    init_adapter = resolve_adapter(train.init_adapter).path if train.init_adapter else None
    key, reused = reuse(
        context,
        recipe,
        {
            "base_model": base_model["sha256"],
            "training_set": training_set["sha256"],
            "split": _split_version(split),
            "raw": raw_data["data_md5"],
            "init_adapter": adapter_sha256(init_adapter) if init_adapter else None,
        },
    )
    if reused is not None and tracking.run_exists(reused["mlflow_run_id"]):
        return reused_output(reused, reused["adapter_sha256"], key)
    folder = workdir(context)
    teacher = training_set.get("teacher", {})
    tags = {
        "rung.recipe_sha256": recipe.sha256,
        "rung.data_dvc_md5": raw_data["data_md5"],
        "rung.base_model": base_model["id"],
        "rung.base_model_sha256": base_model["sha256"],
        "rung.train_sha256": split["train_sha256"],
        "rung.heldout_sha256": split["heldout_sha256"],
        "rung.method": train.method,
        "rung.training_set_sha256": training_set["sha256"],
        **({"rung.init_adapter": train.init_adapter} if init_adapter else {}),
        **(
            {"rung.teacher": teacher["id"], "rung.teacher_kind": teacher["kind"]} if teacher else {}
        ),
        **(
            {"rung.teacher_version": teacher["model_version"]} if "model_version" in teacher else {}
        ),
        **({"rung.reproduces": reproduced_run(context)} if reproduced_run(context) else {}),
        **{f"rung.{k}": v for k, v in tracking.git_state().items()},
        **{f"rung.version.{k}": v for k, v in trainer_env.package_versions().items()},
    }
    run_id = tracking.start_run(recipe.id, context.run_id, tags)
    with tracking.failing_marks_run(run_id) as client:
        config = render_axolotl_config(
            train,
            base_model_dir=Path(base_model["path"]),
            train_file=Path(training_set["file"]),
            output_dir=folder,
            mlflow_tracking_uri=paths.mlflow_tracking_uri(),
            mlflow_experiment=tracking.EXPERIMENT,
            init_adapter_dir=init_adapter,
        )
        config_file = write_axolotl_config(config, folder / "axolotl.yml")
        client.log_artifact(run_id, str(recipe.path), "recipe")
        client.log_artifact(run_id, str(config_file), "axolotl")
        tracking.log_params(client, run_id, tracking.flatten("recipe", recipe.spec.model_dump()))
        log_data_lineage(client, run_id, split)  # datasets with digests, data card, file hashes
        if training_set.get("length_bias"):  # DPO pairs: does "chosen" just mean "longer"?
            tracking.log_metrics(
                client, run_id, {f"pairs.{k}": v for k, v in training_set["length_bias"].items()}
            )
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
                env=pipes_env(run_id),
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
        "adapter_sha256": adapter_sha256(adapter_dir),
        "axolotl_config": str(config_file),
        "log_file": str(log_file),
        **summary,
    }
    remember(
        context,
        recipe,
        key,
        value,
        [str(adapter_dir / "adapter_model.safetensors"), str(config_file), str(log_file)],
    )
    return dg.Output(
        value,
        data_version=dg.DataVersion(value["adapter_sha256"]),
        metadata={
            "cache": "computed",
            "cache_key": key,
            **{k: v for k, v in value.items() if v is not None},
            "mlflow_run_id": dg.MetadataValue.text(run_id),
            "axolotl_yaml": dg.MetadataValue.md(f"```yaml\n{config_file.read_text()}\n```"),
        },
    )
