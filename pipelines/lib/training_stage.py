"""The training_run stage: Axolotl trains the adapter, tracked in one MLflow run.

The asset passes `launch`, which runs pipelines/worker/train.py in the trainer
environment (a Dagster Pipes round trip) and raises if the trainer fails; the MLflow
run is then marked FAILED and nothing downstream sees an adapter. A training killed
before it finished is resumed from its last checkpoint by the next run with the same
cache key (lib/checkpoints.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from pipelines import paths
from pipelines.lib import checkpoints, launchers, state_profile, tracking, trainer_env
from pipelines.lib.asset_values import (
    BaseModelValue,
    RawData,
    Split,
    StageError,
    TrainingRun,
    TrainingSet,
)
from pipelines.lib.axolotl_config import render_axolotl_config, write_axolotl_config
from pipelines.lib.base_model import adapter_sha256, resolve_adapter
from pipelines.lib.data_lineage import log_data_lineage
from pipelines.recipe import LoadedRecipe
from pipelines.worker.divergence import describe_divergence, read_divergence

# launch(axolotl_config, log_file, adapter_dir, mlflow_run_id): train, raise on failure;
# the command to run is in the launch file beside the config (launchers.read_launch_file).
Launch = Callable[[Path, Path, Path, str], None]
LOG_TAIL_LINES = 40


def init_adapter_dir(recipe: LoadedRecipe) -> Path | None:
    """The adapter training starts from (train.init_adapter), resolved locally."""
    reference = recipe.spec.train.init_adapter
    return resolve_adapter(reference).path if reference else None


def cache_inputs(
    recipe: LoadedRecipe,
    base_model: BaseModelValue,
    raw: RawData,
    split: Split,
    training_set: TrainingSet,
) -> dict[str, str | None]:
    init_adapter = init_adapter_dir(recipe)
    return {
        "base_model": base_model.sha256,
        "training_set": training_set.sha256,
        "split": split.data_version,
        "raw": raw.data_md5,
        "init_adapter": adapter_sha256(init_adapter) if init_adapter else None,
    }


def lineage_tags(
    recipe: LoadedRecipe,
    base_model: BaseModelValue,
    raw: RawData,
    split: Split,
    training_set: TrainingSet | None,
    reproduces: str | None,
) -> dict[str, str]:
    """The MLflow tags that tie a run to its exact recipe, data, model, code and packages
    (before training, `training_set` is None: the data and model part only)."""
    train = recipe.spec.train
    teacher = (training_set.teacher if training_set else None) or {}
    tags = {
        "rung.recipe_sha256": recipe.sha256,
        "rung.data_dvc_md5": raw.data_md5,
        "rung.base_model": base_model.id,
        "rung.base_model_sha256": base_model.sha256,
        "rung.train_sha256": split.train_sha256,
        "rung.heldout_sha256": split.heldout_sha256,
        "rung.method": train.method,
        "rung.training_set_sha256": training_set.sha256 if training_set else None,
        "rung.init_adapter": train.init_adapter,
        "rung.teacher": teacher.get("id"),
        "rung.teacher_kind": teacher.get("kind"),
        "rung.teacher_version": teacher.get("model_version"),
        "rung.reproduces": reproduces,
        **{f"rung.{k}": v for k, v in tracking.git_state().items()},
        **{f"rung.version.{k}": v for k, v in trainer_env.package_versions().items()},
    }
    return {key: value for key, value in tags.items() if value}


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def local_host() -> launchers.TrainerHost:
    """This machine's trainer env (.venv-train), beside the orchestrator."""
    return launchers.TrainerHost(
        trainer_bin=paths.TRAINER_PYTHON.parent,
        path=os.environ.get("PATH", ""),
        # the user's OMP_NUM_THREADS wins; else the cores are shared out
        cpu_threads=None if "OMP_NUM_THREADS" in os.environ else len(os.sched_getaffinity(0)),
    )


def _diverged(recipe: LoadedRecipe, run_id: str, record: dict, client) -> StageError:
    """The error for a training the guard stopped (NaN/inf loss or gradient norm); the
    MLflow run says why too (tag rung.failure)."""
    cause = describe_divergence(record)
    client.set_tag(run_id, "rung.failure", cause)
    return StageError(
        f"recipe {recipe.id}: {cause}; MLflow run {run_id} marked FAILED; nothing registered. "
        "Lower train.learning_rate (or add train.warmup_steps) and run it again."
    )


def train_adapter(
    recipe: LoadedRecipe,
    base_model: BaseModelValue,
    raw: RawData,
    split: Split,
    training_set: TrainingSet,
    folder: Path,
    launch: Launch,
    *,
    dagster_run_id: str,
    reproduces: str | None = None,
    host: launchers.TrainerHost | None = None,
    cache_key: str | None = None,
    log: Callable[[str], None] = print,
) -> TrainingRun:
    """Render the Axolotl config, train in the trainer env (on `host`: this machine by
    default), log lineage; the adapter. With `cache_key`, a killed earlier attempt with
    the same key is resumed from its last checkpoint."""
    train = recipe.spec.train
    host = host or local_host()
    needs_cuda_answer = train.adapter == "qlora" or launchers.depends_on_cuda(train)
    if host.cuda is not None:
        cuda = host.cuda
    else:
        cuda = trainer_env.cuda_available() if needs_cuda_answer else False
    if train.adapter == "qlora" and not cuda:
        raise StageError(
            f"recipe {recipe.id}: QLoRA (train.adapter: qlora) loads the base model in 4 bits "
            "with bitsandbytes, which needs a CUDA GPU, and this machine has none. Run it on a "
            "GPU machine, or use train.adapter: lora here."
        )
    if reason := launchers.refusal(train, cuda=cuda):  # DeepSpeed, FSDP, torchrun on a CPU
        raise StageError(f"recipe {recipe.id}: {reason}")
    tags = lineage_tags(recipe, base_model, raw, split, training_set, reproduces)
    killed, resume_from, notes = (
        checkpoints.resume_point(recipe.id, cache_key) if cache_key else (None, None, [])
    )
    for note in notes:
        log(f"recipe {recipe.id}: {note}")
    if resume_from:
        step = checkpoints.step_of(resume_from)
        log(
            f"recipe {recipe.id}: resuming the training that Dagster run "
            f"{killed.dagster_run_id} left unfinished, from step {step} ({resume_from})"
        )
        tags |= {
            "rung.resumed_from_step": str(step),
            "rung.resumes_mlflow_run": killed.mlflow_run_id,
        }
    run_id = tracking.start_run(recipe.id, dagster_run_id, tags)
    with tracking.failing_marks_run(run_id) as client:
        config = render_axolotl_config(
            train,
            base_model_dir=Path(base_model.path),
            train_file=Path(training_set.file),
            output_dir=folder,
            mlflow_tracking_uri=host.mlflow_tracking_uri or state_profile.mlflow_tracking_uri(),
            mlflow_experiment=tracking.EXPERIMENT,
            init_adapter_dir=init_adapter_dir(recipe),
            cuda=cuda,
            resume_from=resume_from,
        )
        config_file = write_axolotl_config(config, folder / "axolotl.yml")
        command = launchers.axolotl_command(
            host.trainer_bin,
            config_file,
            train.distributed,
            cuda,
            path=host.path,
            cpu_threads=host.cpu_threads,
        )
        launchers.write_launch_file(command, config_file)
        client.log_artifact(run_id, str(recipe.path), "recipe")
        client.log_artifact(run_id, str(config_file), "axolotl")
        tracking.log_params(client, run_id, tracking.flatten("recipe", recipe.spec.model_dump()))
        log_data_lineage(client, run_id, split)  # datasets with digests, data card, file hashes
        if training_set.length_bias:  # DPO pairs: does "chosen" just mean "longer"?
            pairs = {f"pairs.{k}": v for k, v in training_set.length_bias.items()}
            tracking.log_metrics(client, run_id, pairs)
        adapter_dir, log_file = Path(config["output_dir"]), folder / "train.log"
        if cache_key and train.checkpoints:
            checkpoints.record_attempt(
                recipe.id,
                cache_key,
                adapter_dir,
                run_id,
                dagster_run_id,
                killed if resume_from else None,
                resume_from,
            )
        try:
            launch(config_file, log_file, adapter_dir, run_id)
        except Exception as exc:  # the worker's own error type is private to Dagster Pipes
            dropped = ""
            if resume_from and checkpoints.last_checkpoint(adapter_dir) is None:
                checkpoints.forget(recipe.id, cache_key)  # a bad checkpoint: never again
                dropped = (
                    f" (it had resumed from {resume_from}, which is not used again: the "
                    "next run trains from scratch)"
                )
            if diverged := read_divergence(adapter_dir):
                raise _diverged(recipe, run_id, diverged, client) from exc
            raise StageError(
                f"training failed for recipe {recipe.id}; MLflow run {run_id} marked FAILED"
                f"{dropped}; last lines of {log_file}:\n{_tail(log_file)}"
            ) from exc
        if diverged := read_divergence(adapter_dir):  # a worker that did not check
            raise _diverged(recipe, run_id, diverged, client)
        if cache_key:
            checkpoints.finish(recipe.id, cache_key, adapter_dir)
        client.log_artifact(run_id, str(log_file), "logs")
        history = client.get_metric_history(run_id, "train_loss")
        losses = client.get_metric_history(run_id, "loss")
    steps = history[-1].step if history else (losses[-1].step if losses else 0)
    mean_loss = history[-1].value if history else None
    if mean_loss is not None and resume_from:
        # transformers divides this session's summed loss by all steps, resumed ones too
        trained = steps - checkpoints.step_of(resume_from)
        mean_loss = mean_loss * steps / trained if trained > 0 else None
    return TrainingRun(
        mlflow_run_id=run_id,
        adapter_dir=str(adapter_dir),
        adapter_sha256=adapter_sha256(adapter_dir),
        axolotl_config=str(config_file),
        log_file=str(log_file),
        steps=steps,
        final_train_loss=losses[-1].value if losses else None,
        mean_train_loss=mean_loss,
    )
