"""The `eval` section and its release gate."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipelines.recipe.base import Section

# Metrics a gate may compare, per eval.task; the first is the default primary metric.
GATE_METRICS: dict[str, tuple[str, ...]] = {
    "extraction": ("field_f1", "exact_match", "valid_json", "lenient_field_f1"),
    "classification": ("macro_f1", "accuracy"),
    "free_text": ("rouge_l", "chrf"),
    "short_answer": ("exact_match", "contains_answer"),
}


class GateSection(Section):
    """The ship gate: the tune ships only if it beats the best cheaper rung (zero-shot,
    few-shot or retrieval base model) on the primary metric by more than 0 and at least
    `min_margin`, with a paired-bootstrap interval above zero, and loses no more forgetting
    probes than `allowed_regressions`."""

    primary_metric: str | None = Field(
        default=None,
        description="Metric the gate compares; default per task: field_f1, macro_f1, rouge_l.",
    )
    min_margin: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="The tune must beat the best cheaper rung by at least this much.",
    )
    allowed_regressions: int = Field(
        default=0,
        ge=0,
        description="Forgetting probes the baseline gets right that the tune may get wrong.",
    )
    max_overfit_gap: float = Field(
        default=0.25,
        ge=0.0,
        le=1.0,
        description="Train-sample minus held-out primary metric above this is flagged.",
    )
    block_on_overfit: bool = Field(
        default=False, description="Make an overfitting flag a NO-SHIP reason."
    )


class RetrievalSection(Section):
    """The retrieval rung: a knowledge corpus searched per question, the top `k` passages
    pasted into the prompt with a fixed template (pipelines/lib/retrieval.py)."""

    corpus: list[str] = Field(
        min_length=1,
        description="Corpus files under the data root (versioned by DVC like all data): "
        "JSONL with one passage per line {id, title, text}, or plain text split on blank lines.",
    )
    method: Literal["bm25", "tfidf"] = Field(
        default="bm25", description="Retriever: BM25 (bm25s) or TF-IDF (scikit-learn)."
    )
    k: int = Field(default=3, ge=1, le=20, description="Passages pasted into each prompt.")


class EvalSection(Section):
    """How the held-out rows are answered and scored, for the tune and the cheaper rungs.

    Rules: `labels` only with `task: classification`; `gate.primary_metric` must be one of
    the task's metrics (extraction: field_f1, exact_match, valid_json, lenient_field_f1;
    classification: macro_f1, accuracy; free_text: rouge_l, chrf; short_answer:
    exact_match, contains_answer).
    """

    task: Literal["extraction", "classification", "free_text", "short_answer"] = Field(
        default="free_text",
        description="How answers are scored: JSON fields, one label, open text, or a short "
        "factual answer (exact match).",
    )
    labels: list[str] | None = Field(
        default=None,
        description="Class labels (classification); default: the distinct held-out answers.",
    )
    few_shot_k: int = Field(
        default=3, ge=1, le=64, description="Training examples in the few-shot prompt."
    )
    few_shot_selection: Literal["fixed", "similar"] = Field(
        default="fixed",
        description="'fixed': the same k examples for every row; "
        "'similar': the k nearest (TF-IDF).",
    )
    max_new_tokens: int = Field(
        default=80, gt=0, le=32_768, description="Generation budget per answer."
    )
    batch_size: int = Field(default=16, gt=0, le=4096, description="Rows per generation batch.")
    train_sample_rows: int = Field(
        default=30,
        ge=0,
        le=100_000,
        description="Training rows the tune answers, for the overfitting gap.",
    )
    probes: bool | int = Field(
        default=True,
        description="Forgetting probes: true asks the whole suite (about 300), false none, "
        "a number N the first N of it (a sample balanced across skills).",
    )
    bootstrap_resamples: int = Field(
        default=1000, ge=100, le=1_000_000, description="Paired bootstrap draws."
    )
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0, description="Interval confidence.")
    num_samples: int = Field(
        default=5,
        ge=0,
        le=1000,
        description="Held-out rows whose answers are shown in the report.",
    )
    gate: GateSection = Field(
        default_factory=GateSection, description="The ship gate applied to the scores."
    )
    retrieval: RetrievalSection | None = Field(
        default=None,
        description="Adds the retrieval rung (base model + passages) and tuned + passages.",
    )
    target: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Goal for the primary metric: when a cheaper rung (baseline, few-shot, "
        "retrieval) reaches it on the held-out rows, training is skipped and that rung's "
        "prompt is registered instead. Unset: always train.",
    )

    @model_validator(mode="after")
    def _consistent_with_task(self) -> EvalSection:
        if type(self.probes) is int and self.probes < 1:
            raise ValueError("eval.probes: a number of probes must be at least 1 (or false)")
        if self.labels is not None and self.task != "classification":
            raise ValueError("eval.labels is only used with eval.task: classification")
        allowed = GATE_METRICS[self.task]
        if self.gate.primary_metric is not None and self.gate.primary_metric not in allowed:
            raise ValueError(
                f"eval.gate.primary_metric {self.gate.primary_metric!r} does not fit "
                f"eval.task {self.task!r}; use one of {', '.join(allowed)}"
            )
        return self

    @property
    def primary_metric(self) -> str:
        return self.gate.primary_metric or GATE_METRICS[self.task][0]
