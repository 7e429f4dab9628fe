from typing import Any, get_args

from pydantic import BaseModel

from pipelines.recipe import GATE_METRICS, EvalSection, Recipe
from pipelines.recipe.reference import (
    REFERENCE_FILE,
    recipe_reference_markdown,
    recipe_sections,
)


def _models_under(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Every model reachable from `model` through field types, however nested."""
    found = {model.__name__: model}

    def visit(annotation: Any) -> None:
        is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        if is_model and annotation.__name__ not in found:
            found.update(_models_under(annotation))
        for arg in get_args(annotation):
            visit(arg)

    for field in model.model_fields.values():
        visit(field.annotation)
    return found


def test_every_recipe_field_has_a_description():
    missing = [
        f"{model.__name__}.{name}"
        for model in _models_under(Recipe).values()
        for name, field in model.model_fields.items()
        if not (field.description or "").strip()
    ]
    assert not missing, f"recipe fields without a description: {', '.join(missing)}"


def test_reference_covers_every_section():
    rendered = {model.__name__ for _, model in recipe_sections()}
    assert rendered == set(_models_under(Recipe))
    keys = [key for key, _ in recipe_sections()]
    assert {"data.dedupe", "train.dpo", "train.distill", "eval.gate", "register"} <= set(keys)


def test_reference_is_deterministic():
    assert recipe_reference_markdown() == recipe_reference_markdown()


def test_eval_rules_name_every_gate_metric():
    # The docstring lists the allowed metrics by hand; it must follow GATE_METRICS.
    doc = EvalSection.__doc__ or ""
    for task, metrics in GATE_METRICS.items():
        assert f"{task}: {', '.join(metrics)}" in " ".join(doc.split())


def test_committed_reference_is_up_to_date():
    expected = recipe_reference_markdown()
    committed = REFERENCE_FILE.read_text(encoding="utf-8") if REFERENCE_FILE.is_file() else ""
    assert committed == expected, (
        f"{REFERENCE_FILE} differs from the recipe schema: run `make docs` and commit it"
    )
