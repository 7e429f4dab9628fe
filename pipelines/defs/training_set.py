"""The rows the trainer learns from, by training method (see pipelines/lib/training_set.py)."""

from pathlib import Path

import dagster as dg

from pipelines.defs.common import recipe_for, recipe_partitions, run_inference, workdir
from pipelines.lib import evaluation as ladder
from pipelines.lib.dataset import read_conversations, write_jsonl
from pipelines.lib.metrics import scorer_for
from pipelines.lib.teacher import ask_http_teacher, resolve_teacher
from pipelines.lib.training_set import (
    as_sft,
    distilled_records,
    length_bias,
    on_policy_pairs,
    preference_records,
    prompt_of,
)


def _ask_each_row(train, model: str, max_new_tokens: int) -> list[dict]:
    return [
        {
            "key": key,
            "model": model,
            "messages": prompt_of(messages),
            "max_new_tokens": max_new_tokens,
        }
        for key, messages in zip(train["id"], train["messages"])
    ]


@dg.asset(partitions_def=recipe_partitions, group_name="rung")
def training_set(
    context: dg.AssetExecutionContext,
    pipes_subprocess_client: dg.PipesSubprocessClient,
    base_model: dict,
    split: dict,
) -> dg.Output[dict]:
    """SFT rows as split; DPO pairs (from data or on-policy); or teacher-labelled rows."""
    recipe = recipe_for(context)
    train_cfg, method = recipe.spec.train, recipe.spec.train.method
    if method == "sft":
        value = {
            "file": split["train_file"],
            "sha256": split["train_sha256"],
            "rows": split["train_rows"],
            "method": method,
        }
        return dg.Output(
            value,
            data_version=dg.DataVersion(value["sha256"]),
            metadata={"rows": value["rows"], "method": method},
        )

    folder = workdir(context)
    train = read_conversations(Path(split["train_file"]))
    metadata: dict = {"method": method}
    value: dict = {"method": method}
    if method == "dpo" and train_cfg.dpo.pairs == "data":
        records = preference_records(train)
    elif method == "dpo":  # on-policy: the base model's own wrong answers are the rejected ones
        train = as_sft(train)
        answers, _ = run_inference(
            context,
            pipes_subprocess_client,
            folder,
            base_model_dir=base_model["path"],
            adapters={},
            requests=_ask_each_row(train, ladder.BASE, recipe.spec.eval.max_new_tokens),
        )
        scorer = scorer_for(recipe.spec.eval.task, ladder.labels_for(recipe.spec.eval, train))
        records, already_right = on_policy_pairs(train, answers, scorer)
        metadata["base_already_right"] = already_right
    else:  # distill: the teacher labels the training prompts; gold answers are never used
        teacher = resolve_teacher(train_cfg.distill)
        value["teacher"] = teacher
        provenance = {
            "teacher": teacher["id"],
            "teacher_kind": teacher["kind"],
            "max_new_tokens": train_cfg.distill.max_new_tokens,
            "temperature": train_cfg.distill.temperature,
            **({"model_version": teacher["model_version"]} if "model_version" in teacher else {}),
        }
        if teacher["kind"] == "http":
            answers = dict(
                zip(
                    train["id"],
                    ask_http_teacher(train_cfg.distill, [prompt_of(m) for m in train["messages"]]),
                )
            )
        else:
            if train_cfg.distill.temperature > 0:
                raise dg.Failure(
                    "train.distill.temperature > 0 needs an HTTP teacher; a local "
                    "adapter teacher answers greedily (set temperature: 0)"
                )
            answers, _ = run_inference(
                context,
                pipes_subprocess_client,
                folder,
                base_model_dir=base_model["path"],
                adapters={ladder.TEACHER: teacher["adapter_dir"]},
                requests=_ask_each_row(train, ladder.TEACHER, train_cfg.distill.max_new_tokens),
            )
        records = distilled_records(train, answers, provenance)
        metadata["teacher"] = teacher["id"]

    if method == "dpo":
        value["length_bias"] = length_bias(records)
        metadata["length_bias"] = dg.MetadataValue.json(value["length_bias"])
    if not records:
        raise dg.Failure(
            f"the {method} training set for {recipe.id} is empty: "
            "nothing to learn from (see the metadata of this asset)"
        )
    file = folder / "training_set.jsonl"
    value.update(file=str(file), sha256=write_jsonl(records, file), rows=len(records))
    return dg.Output(
        value,
        data_version=dg.DataVersion(value["sha256"]),
        metadata={**metadata, "rows": len(records), "sha256": value["sha256"]},
    )
