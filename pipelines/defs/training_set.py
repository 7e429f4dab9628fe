"""The rows the trainer learns from, by training method (see pipelines/lib/training_set.py)."""

from pathlib import Path

import dagster as dg

from pipelines import paths
from pipelines.defs.common import (
    recipe_for,
    recipe_partitions,
    remember,
    reuse,
    reused_output,
    run_inference,
    workdir,
)
from pipelines.lib import asset_cache
from pipelines.lib import evaluation as ladder
from pipelines.lib.base_model import adapter_sha256
from pipelines.lib.dataset import read_conversations, read_jsonl, sha256_file, write_jsonl
from pipelines.lib.metrics import scorer_for
from pipelines.lib.teacher import ask_http_teacher, resolve_teacher
from pipelines.lib.token_length import ChatTokenCounter
from pipelines.lib.training_set import (
    as_sft,
    distilled_records,
    length_bias,
    on_policy_pairs,
    preference_records,
    prompt_of,
    rehearsal_prompts,
    rehearsal_records,
    within_length,
)


def _requests(keys, conversations, model: str, max_new_tokens: int) -> list[dict]:
    """Generation requests for the trainer-env worker (pipelines/worker/evaluate.py)."""
    return [
        {"key": key, "model": model, "messages": messages, "max_new_tokens": max_new_tokens}
        for key, messages in zip(keys, conversations)
    ]


def _prompts(train) -> list[list[dict]]:
    return [prompt_of(messages) for messages in train["messages"]]


@dg.asset(
    partitions_def=recipe_partitions,
    group_name="rung",
    code_version=asset_cache.code_version("training_set"),
)
def training_set(
    context: dg.AssetExecutionContext,
    pipes_subprocess_client: dg.PipesSubprocessClient,
    base_model: dict,
    split: dict,
) -> dg.Output[dict]:
    """SFT rows as split; DPO pairs (from data or on-policy); or teacher-labelled rows;
    plus, with train.rehearsal, the base model's own answers to unrelated prompts."""
    recipe = recipe_for(context)
    train_cfg, method = recipe.spec.train, recipe.spec.train.method
    rehearsal = train_cfg.rehearsal
    if method == "sft" and rehearsal is None:
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

    teacher = resolve_teacher(train_cfg.distill) if method == "distill" else None
    rehearsal_file = paths.sources_root() / rehearsal.source if rehearsal else None
    key, reused = reuse(
        context,
        recipe,
        {
            "train": split["train_sha256"],
            "base_model": base_model["sha256"],
            # The recipe parts name an HTTP teacher; an adapter behind an alias can move.
            "teacher": adapter_sha256(Path(teacher["adapter_dir"]))
            if teacher and teacher["kind"] == "adapter"
            else None,
            "rehearsal_source": sha256_file(rehearsal_file) if rehearsal_file else None,
        },
    )
    if reused is not None:
        return reused_output(reused, reused["sha256"], key)
    folder = workdir(context)
    train_file = Path(split["train_file"])
    # SFT rows pass through as written; the other methods work on parsed conversations.
    train = None if method == "sft" else read_conversations(train_file)
    metadata: dict = {"method": method}
    value: dict = {"method": method}

    # Everything the local models must answer goes to the worker in one call (one load).
    prompts = _rehearsal_prompts(recipe, rehearsal_file) if rehearsal else []
    requests = _requests(
        [p["id"] for p in prompts],
        [[{"role": "user", "content": p["prompt"]}] for p in prompts],
        ladder.BASE,
        rehearsal.max_new_tokens if rehearsal else 0,
    )
    adapters: dict[str, str] = {}
    if method == "dpo" and train_cfg.dpo.pairs == "on_policy":
        train = as_sft(train)
        requests += _requests(
            train["id"], _prompts(train), ladder.BASE, recipe.spec.eval.max_new_tokens
        )
    elif method == "distill" and teacher["kind"] == "adapter":
        if train_cfg.distill.temperature > 0:
            raise dg.Failure(
                "train.distill.temperature > 0 needs an HTTP teacher; a local "
                "adapter teacher answers greedily (set temperature: 0)"
            )
        adapters[ladder.TEACHER] = teacher["adapter_dir"]
        requests += _requests(
            train["id"], _prompts(train), ladder.TEACHER, train_cfg.distill.max_new_tokens
        )
    answers = {}
    if requests:
        answers, _ = run_inference(
            context,
            pipes_subprocess_client,
            folder,
            base_model_dir=base_model["path"],
            adapters=adapters,
            requests=requests,
        )

    if method == "sft":
        records = read_jsonl(train_file)
    elif method == "dpo" and train_cfg.dpo.pairs == "data":
        records = preference_records(train)
    elif method == "dpo":  # on-policy: the base model's own wrong answers are the rejected ones
        scorer = scorer_for(recipe.spec.eval.task, ladder.labels_for(recipe.spec.eval, train))
        records, already_right = on_policy_pairs(train, answers, scorer)
        metadata["base_already_right"] = already_right
    else:  # distill: the teacher labels the training prompts; gold answers are never used
        value["teacher"] = teacher
        provenance = {
            "teacher": teacher["id"],
            "teacher_kind": teacher["kind"],
            "max_new_tokens": train_cfg.distill.max_new_tokens,
            "temperature": train_cfg.distill.temperature,
            **({"model_version": teacher["model_version"]} if "model_version" in teacher else {}),
        }
        if teacher["kind"] == "http":
            answers = dict(zip(train["id"], ask_http_teacher(train_cfg.distill, _prompts(train))))
        records = distilled_records(train, answers, provenance)
        metadata["teacher"] = teacher["id"]

    if rehearsal is not None:
        added = _rehearsal_rows(context, recipe, base_model, prompts, answers)
        metadata["rehearsal_rows"] = value["rehearsal_rows"] = len(added)
        records += added
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
    remember(context, recipe, key, value, [value["file"]])
    return dg.Output(
        value,
        data_version=dg.DataVersion(value["sha256"]),
        metadata={
            **metadata,
            "rows": len(records),
            "sha256": value["sha256"],
            "cache": "computed",
            "cache_key": key,
        },
    )


def _rehearsal_prompts(recipe, source: Path) -> list[dict[str, str]]:
    cfg = recipe.spec.train.rehearsal
    try:
        return rehearsal_prompts(source, cfg.field, cfg.rows, recipe.spec.data.seed)
    except ValueError as exc:
        raise dg.Failure(f"recipe {recipe.id}: train.rehearsal: {exc}") from None


def _rehearsal_rows(context, recipe, base_model: dict, prompts, answers) -> list[dict]:
    """The base model's answers to the rehearsal prompts as training rows; like the data
    stage, rows longer than train.sequence_len are dropped, never truncated."""
    provenance = {
        "rehearsal": recipe.spec.train.rehearsal.source,
        "model": base_model["id"],
        "model_sha256": base_model["sha256"],
    }
    records = rehearsal_records(prompts, answers, provenance)
    count = ChatTokenCounter(Path(base_model["path"])).count
    fits = within_length(records, count, recipe.spec.train.sequence_len)
    if len(fits) < len(records):
        context.log.info(f"rehearsal: {len(records) - len(fits)} rows over sequence_len dropped")
    return fits
