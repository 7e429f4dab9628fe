"""The `model` section: which base model the adapter is trained on."""

from __future__ import annotations

from pydantic import Field

from pipelines.recipe.base import Section

EMBEDDED_BASE_MODEL = "smollm2-135m-instruct"


class ModelSection(Section):
    """The base model the adapter is trained on."""

    base_model: str = Field(
        default=EMBEDDED_BASE_MODEL,
        description=(
            f"'{EMBEDDED_BASE_MODEL}' (embedded, offline), a local model directory, "
            "or a Hugging Face Hub id (needs internet and a prior download)."
        ),
    )
