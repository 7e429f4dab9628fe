"""The training_set stage: the rows the trainer learns from, one builder per method.

A builder says what the local models must answer (`requests`) and turns the answers
into training records (`records`); everything a run needs answered goes to the models
in one `infer` call (one model load). Row-level helpers are in lib/training_set.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines import paths
from pipelines.lib import evaluation as ladder
from pipelines.lib.asset_values import BaseModelValue, Split, StageError, TrainingSet
from pipelines.lib.base_model import adapter_sha256
from pipelines.lib.dataset import read_conversations, read_jsonl, sha256_file, write_jsonl
from pipelines.lib.inference import Infer
from pipelines.lib.metrics import scorer_for
from pipelines.lib.teacher import TeacherError, ask_http_teacher, resolve_teacher
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
from pipelines.recipe import LoadedRecipe
from pipelines.worker.progress import ProgressTicker


def generation_requests(keys, conversations, model: str, max_new_tokens: int) -> list[dict]:
    """Requests for the inference worker, one per conversation."""
    return [
        {"key": key, "model": model, "messages": messages, "max_new_tokens": max_new_tokens}
        for key, messages in zip(keys, conversations)
    ]


def _prompts(train: pd.DataFrame) -> list[list[dict]]:
    return [prompt_of(messages) for messages in train["messages"]]


@dataclass
class Built:
    records: list[dict[str, Any]]
    notes: dict[str, Any] = field(default_factory=dict)


class SftBuilder:
    """The training split as it is."""

    def requests(self, recipe, train, teacher) -> tuple[list[dict], dict[str, str]]:
        return [], {}

    def records(self, recipe, split: Split, train, answers, teacher) -> Built:
        return Built(read_jsonl(Path(split.train_file)))


class DpoBuilder:
    """Preference pairs from the data, or on-policy: gold chosen, the base model's wrong
    answer rejected."""

    def requests(self, recipe, train, teacher) -> tuple[list[dict], dict[str, str]]:
        if recipe.spec.train.dpo.pairs != "on_policy":
            return [], {}
        train = as_sft(train)
        max_new = recipe.spec.eval.max_new_tokens
        return generation_requests(train["id"], _prompts(train), ladder.BASE, max_new), {}

    def records(self, recipe, split: Split, train, answers, teacher) -> Built:
        if recipe.spec.train.dpo.pairs == "data":
            records = preference_records(train)
            return Built(records, {"length_bias": length_bias(records)})
        scorer = scorer_for(recipe.spec.eval.task, ladder.labels_for(recipe.spec.eval, train))
        records, already_right = on_policy_pairs(as_sft(train), answers, scorer)
        return Built(
            records, {"length_bias": length_bias(records), "base_already_right": already_right}
        )


class DistillBuilder:
    """The teacher labels the training prompts; gold answers are never used."""

    def __init__(self, log: Callable[[str], None] = print) -> None:
        self.log = log  # progress of an HTTP teacher (the asset passes the run's logger)

    def requests(self, recipe, train, teacher) -> tuple[list[dict], dict[str, str]]:
        cfg = recipe.spec.train.distill
        if teacher["kind"] != "adapter":
            return [], {}
        if cfg.temperature > 0:
            raise StageError(
                "train.distill.temperature > 0 needs an HTTP teacher; a local "
                "adapter teacher answers greedily (set temperature: 0)"
            )
        requests = generation_requests(
            train["id"], _prompts(train), ladder.TEACHER, cfg.max_new_tokens
        )
        return requests, {ladder.TEACHER: teacher["adapter_dir"]}

    def records(self, recipe, split: Split, train, answers, teacher) -> Built:
        cfg = recipe.spec.train.distill
        provenance = {
            "teacher": teacher["id"],
            "teacher_kind": teacher["kind"],
            "max_new_tokens": cfg.max_new_tokens,
            "temperature": cfg.temperature,
            **({"model_version": teacher["model_version"]} if "model_version" in teacher else {}),
        }
        if teacher["kind"] == "http":
            ticker = ProgressTicker(len(train), self.log, what="asking the teacher", unit="rows")
            try:
                labels = ask_http_teacher(
                    cfg, _prompts(train), progress=lambda done, total: ticker.update(done)
                )
            except TeacherError as exc:
                raise StageError(str(exc)) from None
            answers = dict(zip(train["id"], labels))
        return Built(distilled_records(train, answers, provenance))


def builder_for(
    method: str, log: Callable[[str], None]
) -> SftBuilder | DpoBuilder | DistillBuilder:
    """The builder of a training method (the distiller reports an HTTP teacher's progress)."""
    if method == "distill":
        return DistillBuilder(log)
    return {"sft": SftBuilder, "dpo": DpoBuilder}[method]()


def find_teacher(recipe: LoadedRecipe) -> dict[str, str] | None:
    """Where a distill recipe's teacher lives (adapter or HTTP endpoint); None otherwise."""
    if recipe.spec.train.method != "distill":
        return None
    try:
        return resolve_teacher(recipe.spec.train.distill)
    except TeacherError as exc:
        raise StageError(f"recipe {recipe.id}: {exc}") from None


def rehearsal_file(recipe: LoadedRecipe) -> Path | None:
    cfg = recipe.spec.train.rehearsal
    return paths.sources_root() / cfg.source if cfg else None


def cache_inputs(
    recipe: LoadedRecipe, base_model: BaseModelValue, split: Split, teacher: dict | None
) -> dict[str, Any]:
    """What the training set depends on besides the recipe parts the cache already reads."""
    rehearsal = rehearsal_file(recipe)
    return {
        "train": split.train_sha256,
        "base_model": base_model.sha256,
        # The recipe parts name an HTTP teacher; an adapter behind an alias can move.
        "teacher": adapter_sha256(Path(teacher["adapter_dir"]))
        if teacher and teacher["kind"] == "adapter"
        else None,
        "rehearsal_source": sha256_file(rehearsal) if rehearsal else None,
    }


def _rehearsal_prompts(recipe: LoadedRecipe) -> list[dict[str, str]]:
    cfg = recipe.spec.train.rehearsal
    if cfg is None:
        return []
    try:
        return rehearsal_prompts(rehearsal_file(recipe), cfg.field, cfg.rows, recipe.spec.data.seed)
    except ValueError as exc:
        raise StageError(f"recipe {recipe.id}: train.rehearsal: {exc}") from None


def _rehearsal_rows(recipe, base_model: BaseModelValue, prompts, answers) -> list[dict]:
    """The base model's answers to the rehearsal prompts as training rows; like the data
    stage, rows longer than train.sequence_len are dropped, never truncated."""
    provenance = {
        "rehearsal": recipe.spec.train.rehearsal.source,
        "model": base_model.id,
        "model_sha256": base_model.sha256,
    }
    records = rehearsal_records(prompts, answers, provenance)
    count = ChatTokenCounter(Path(base_model.path)).count
    return within_length(records, count, recipe.spec.train.sequence_len)


def build_training_set(
    recipe: LoadedRecipe,
    base_model: BaseModelValue,
    split: Split,
    teacher: dict[str, str] | None,
    folder: Path,
    infer: Infer,
    log: Callable[[str], None] = print,
) -> TrainingSet:
    """SFT rows as split; DPO pairs (from data or on-policy); or teacher-labelled rows;
    plus, with train.rehearsal, the base model's own answers to unrelated prompts."""
    method = recipe.spec.train.method
    prompts = _rehearsal_prompts(recipe)
    if method == "sft" and not prompts:  # nothing to add: the split's train file as it is
        return TrainingSet(
            method=method, file=split.train_file, sha256=split.train_sha256, rows=split.train_rows
        )
    builder = builder_for(method, log)
    train = None if method == "sft" else read_conversations(Path(split.train_file))
    rehearsal_tokens = recipe.spec.train.rehearsal.max_new_tokens if prompts else 0
    requests, adapters = builder.requests(recipe, train, teacher)
    requests = (
        generation_requests(
            [p["id"] for p in prompts],
            [[{"role": "user", "content": p["prompt"]}] for p in prompts],
            ladder.BASE,
            rehearsal_tokens,
        )
        + requests
    )
    answers = infer(requests, adapters).answers if requests else {}
    built = builder.records(recipe, split, train, answers, teacher)
    records = built.records
    rehearsed = _rehearsal_rows(recipe, base_model, prompts, answers) if prompts else []
    if not records:
        raise StageError(
            f"the {method} training set for {recipe.id} is empty: nothing to learn from"
            + (f" ({built.notes})" if built.notes else "")
        )
    records = records + rehearsed
    file = folder / "training_set.jsonl"
    return TrainingSet(
        method=method,
        file=str(file),
        sha256=write_jsonl(records, file),
        rows=len(records),
        rehearsal_rows=len(rehearsed),
        teacher=teacher,
        length_bias=built.notes.pop("length_bias", None),
        notes=built.notes,
    )
