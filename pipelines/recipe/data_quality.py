"""The `data.dedupe` and `data.balance` sub-sections: the data-quality checks' knobs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipelines.recipe.base import Section


class DedupeSection(Section):
    """Near-duplicate detection over the cleaned rows (MinHash LSH)."""

    near: bool = Field(
        default=True,
        description=(
            "Drop near-duplicates (MinHash LSH), keeping the first row of each cluster. "
            "Exact duplicates are always dropped; the leakage check runs either way."
        ),
    )
    shingle_unit: Literal["words", "chars"] = Field(
        default="words",
        description="Shingles are word n-grams (robust on structured rows) or character n-grams.",
    )
    shingle_size: int = Field(
        default=3, ge=1, le=32, description="Words or characters per shingle."
    )
    num_perm: int = Field(
        default=128, ge=16, le=1024, description="MinHash permutations (signature length)."
    )
    threshold: float = Field(
        default=0.8,
        gt=0.0,
        lt=1.0,
        description="Estimated Jaccard similarity at or above which two rows are near-duplicates.",
    )


class BalanceSection(Section):
    """Class balance of labelled tasks (those with `data.label_field`).

    Rule: `warn_majority_share` must not exceed `max_majority_share`.
    """

    warn_majority_share: float = Field(
        default=0.7,
        gt=0.0,
        le=1.0,
        description="Labelled tasks: warn when the largest class holds more than this share.",
    )
    max_majority_share: float = Field(
        default=0.9,
        gt=0.0,
        le=1.0,
        description="Labelled tasks: block training when the largest class holds more than this.",
    )
    rebalance: Literal["none", "cap", "upsample"] = Field(
        default="none",
        description=(
            "Training rows only: 'cap' cuts every class to the smallest class's size, "
            "'upsample' repeats rows of smaller classes up to the largest (deterministic)."
        ),
    )

    @model_validator(mode="after")
    def _warn_below_block(self) -> BalanceSection:
        if self.warn_majority_share > self.max_majority_share:
            raise ValueError(
                "data.balance.warn_majority_share must not exceed data.balance.max_majority_share "
                f"({self.warn_majority_share} > {self.max_majority_share}): lower the first or "
                "raise the second"
            )
        return self
