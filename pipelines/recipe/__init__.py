"""The recipe schema: one YAML file per experiment, its stem is the recipe id.

A recipe holds only what differs from these defaults. Unknown keys are errors
(Axolotl silently ignores misspelled keys; rung must not), and every error names
the file and the key and says what to change. One module per section; docs/recipes.md
is generated from them (`make docs`). Importers use this package, not its modules, so
the layout can change without touching them.
"""

from pipelines.recipe.base import Section
from pipelines.recipe.data import FORMAT_FIELDS, DataSection, FieldMap
from pipelines.recipe.data_quality import BalanceSection, DedupeSection
from pipelines.recipe.eval import GATE_METRICS, EvalSection, GateSection, RetrievalSection
from pipelines.recipe.loading import (
    RECIPE_ID_PATTERN,
    LoadedRecipe,
    RecipeError,
    list_recipe_ids,
    load_recipe,
    parse_recipe,
    recipe_path,
)
from pipelines.recipe.model import EMBEDDED_BASE_MODEL, ModelSection
from pipelines.recipe.register import RegisterSection
from pipelines.recipe.schema import Recipe, Sections
from pipelines.recipe.train import DistillSection, DpoSection, RehearsalSection, TrainSection

__all__ = [
    "EMBEDDED_BASE_MODEL",
    "FORMAT_FIELDS",
    "GATE_METRICS",
    "RECIPE_ID_PATTERN",
    "BalanceSection",
    "DataSection",
    "DedupeSection",
    "DistillSection",
    "DpoSection",
    "EvalSection",
    "FieldMap",
    "GateSection",
    "RetrievalSection",
    "LoadedRecipe",
    "ModelSection",
    "Recipe",
    "RecipeError",
    "RegisterSection",
    "RehearsalSection",
    "Section",
    "Sections",
    "TrainSection",
    "list_recipe_ids",
    "load_recipe",
    "parse_recipe",
    "recipe_path",
]
