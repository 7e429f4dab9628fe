"""The `register` section: how the shipped adapter is named in the MLflow registry."""

from __future__ import annotations

from pydantic import Field

from pipelines.recipe.base import Section


class RegisterSection(Section):
    """Model-registry naming for an adapter that passes the gate."""

    name: str | None = Field(
        default=None, description="Registered model name in MLflow; defaults to the recipe id."
    )
