"""The `data` section: which raw files, how a row becomes a conversation, how rows are
cleaned, sampled and split."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipelines.recipe.base import Section
from pipelines.recipe.data_quality import BalanceSection, DedupeSection

# Raw fields each data.format reads (the canonical names; data.fields renames them).
FORMAT_FIELDS: dict[str, tuple[str, ...]] = {
    "messages": ("messages",),
    "prompt_completion": ("prompt", "completion"),
    "alpaca": ("instruction", "input", "output"),
    "sharegpt": ("conversations",),
    "preference": ("prompt", "chosen", "rejected"),
}


class FieldMap(Section):
    """Raw field (or CSV/Parquet column) names; an unset name is the format's standard one."""

    messages: str | None = Field(
        default=None, description="format messages: list of {role, content} (default 'messages')."
    )
    conversations: str | None = Field(
        default=None,
        description="format sharegpt: list of {from, value} (default 'conversations').",
    )
    prompt: str | None = Field(
        default=None,
        description="format prompt_completion or preference: the user's input (default 'prompt').",
    )
    completion: str | None = Field(
        default=None,
        description=(
            "format prompt_completion: the answer; an object is written as compact JSON "
            "(default 'completion')."
        ),
    )
    instruction: str | None = Field(
        default=None, description="format alpaca: the instruction (default 'instruction')."
    )
    input: str | None = Field(
        default=None,
        description="format alpaca: optional context appended to the instruction "
        "(default 'input').",
    )
    output: str | None = Field(
        default=None, description="format alpaca: the answer (default 'output')."
    )
    chosen: str | None = Field(
        default=None, description="format preference: the preferred answer (default 'chosen')."
    )
    rejected: str | None = Field(
        default=None, description="format preference: the worse answer (default 'rejected')."
    )

    def name(self, canonical: str) -> str:
        """The raw field that holds `canonical` (e.g. 'prompt' -> 'address')."""
        return getattr(self, canonical) or canonical


class DataSection(Section):
    """Which raw files, how a row becomes a conversation, how rows are sampled and split.

    Rules: `prompt_template` must contain `{prompt}`; `fields` may name only the parts
    that `format` reads (each `data.fields` key says which formats read it);
    `balance.rebalance` other than `none` needs `label_field`.
    """

    sources: list[str] = Field(
        min_length=1,
        description=(
            "Raw files, relative to the repository root (under data/): .jsonl, .csv or "
            ".parquet; several files are read in order."
        ),
    )
    format: Literal["messages", "prompt_completion", "alpaca", "sharegpt", "preference"] = Field(
        default="prompt_completion",
        description=(
            "How a raw row maps to a conversation: OpenAI-style messages, prompt/completion, "
            "alpaca (instruction/input/output), sharegpt (conversations of from/value), or "
            "preference pairs (prompt/chosen/rejected)."
        ),
    )
    fields: FieldMap = Field(
        default_factory=FieldMap,
        description="Raw field or column names for the format's parts (defaults: standard names).",
    )
    system_prompt: str | None = Field(
        default=None,
        description="System message put before every conversation that has none of its own.",
    )
    prompt_template: str = Field(
        default="{prompt}",
        description=(
            "User message; '{prompt}' is replaced by the row's prompt (prompt_completion, "
            "preference, alpaca)."
        ),
    )
    label_field: str | None = Field(
        default=None,
        description=(
            "Raw field holding a class label (labelled tasks): the split is stratified by it "
            "and the class-balance check watches it."
        ),
    )
    passage_field: str | None = Field(
        default=None,
        description=(
            "Raw field naming the row's source passage in eval.retrieval's corpus (knowledge "
            "tasks): kept with the row so the retrieval rung's recall@k can be reported."
        ),
    )
    group_by: list[str] = Field(
        default_factory=list,
        description=(
            "Raw fields (e.g. a conversation or customer id) whose rows must all land on the "
            "same side of the split."
        ),
    )
    max_bad_fraction: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Fail cleaning when more than this share of the rows in is quarantined.",
    )
    heldout_fraction: float = Field(
        default=0.15,
        gt=0.0,
        le=0.5,
        description="Share of rows held out for evaluation (the field's rule: 10-20%).",
    )
    min_heldout_rows: int = Field(
        default=5,
        ge=1,
        le=100_000,
        description="Block training when the held-out side has fewer rows.",
    )
    seed: int = Field(
        default=42, ge=0, le=2**32 - 1, description="Seed of the row sample and the split."
    )
    max_rows: int | None = Field(
        default=None,
        gt=1,
        le=100_000_000,
        description="Keep a deterministic sample of this many cleaned rows (small CPU runs).",
    )
    skip_rows: int = Field(
        default=0,
        ge=0,
        le=100_000_000,
        description=(
            "Start the sample this many rows into its hash order: a recipe whose skip_rows is "
            "another's max_rows (same data and seed) gets only rows the other never saw."
        ),
    )
    dedupe: DedupeSection = Field(
        default_factory=DedupeSection, description="Near-duplicate detection (MinHash LSH)."
    )
    balance: BalanceSection = Field(
        default_factory=BalanceSection, description="Class balance of labelled tasks."
    )

    @model_validator(mode="after")
    def _fields_fit_format(self) -> DataSection:
        if "{prompt}" not in self.prompt_template:
            raise ValueError("data.prompt_template must contain '{prompt}'")
        used = FORMAT_FIELDS[self.format]
        stray = [name for name, value in self.fields if value is not None and name not in used]
        if stray:
            raise ValueError(
                f"data.fields.{stray[0]} is not read by data.format '{self.format}' "
                f"(it reads: {', '.join(used)}); remove it or change data.format"
            )
        if self.label_field is None and self.balance.rebalance != "none":
            raise ValueError(
                "data.balance.rebalance needs labels: set data.label_field to the raw label field"
            )
        return self

    @property
    def raw_fields(self) -> dict[str, str]:
        """Canonical part name -> raw field name, for this format."""
        return {part: self.fields.name(part) for part in FORMAT_FIELDS[self.format]}
