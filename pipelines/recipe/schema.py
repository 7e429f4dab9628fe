"""The whole recipe: its sections, and the rules that tie one section to another."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipelines.recipe.base import Section
from pipelines.recipe.data import DataSection
from pipelines.recipe.eval import EvalSection
from pipelines.recipe.model import ModelSection
from pipelines.recipe.register import RegisterSection
from pipelines.recipe.train import TrainSection


class Recipe(Section):
    """A recipe file's top level; only `data` is required.

    Rules across sections: `data.format: preference` goes with, and only with,
    `train.method: dpo` and `train.dpo.pairs: data`; `train.method: dpo` needs
    `train.sample_packing: false` and no `train.rehearsal`; `train.distill` is set for,
    and only for, `train.method: distill`.
    """

    data: DataSection = Field(description="The raw data and how it is cleaned and split.")
    model: ModelSection = Field(default_factory=ModelSection, description="The base model.")
    train: TrainSection = Field(
        default_factory=TrainSection, description="The training method and its settings."
    )
    eval: EvalSection = Field(
        default_factory=EvalSection, description="Held-out evaluation and the ship gate."
    )
    # 'register' would shadow BaseModel.register (abc), so the attribute is `registry`.
    registry: RegisterSection = Field(
        default_factory=RegisterSection,
        alias="register",
        description="How a shipped adapter is named in the MLflow model registry.",
    )

    @model_validator(mode="after")
    def _data_fits_training(self) -> Recipe:
        train, preference = self.train, self.data.format == "preference"
        if preference and not (train.method == "dpo" and train.dpo.pairs == "data"):
            raise ValueError(
                "data.format 'preference' holds chosen/rejected pairs: use train.method: dpo "
                "with train.dpo.pairs: data (or prompt_completion with the chosen answer for SFT)"
            )
        if train.method == "dpo" and train.dpo.pairs == "data" and not preference:
            raise ValueError("train.dpo.pairs: data needs data.format: preference")
        if train.method == "dpo" and train.sample_packing:
            raise ValueError("train.sample_packing must be false for method: dpo")
        if train.method == "dpo" and train.rehearsal is not None:
            raise ValueError(
                "train.rehearsal adds answers to imitate, for sft and distill; DPO learns from "
                "pairs and keeps the reference model's behaviour through train.dpo.beta"
            )
        if (train.method == "distill") != (train.distill is not None):
            raise ValueError(
                "train.distill (the teacher) is required for, and only for, train.method: distill"
            )
        return self


Sections = Literal["data", "model", "train", "eval", "registry"]
