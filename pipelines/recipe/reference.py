"""Render docs/recipes.md, the recipe reference, from the schema itself.

Generated rather than hand-written so that the reference cannot drift from what
validation accepts: tests/test_recipe_reference.py fails when the committed file differs
from this output. The output depends only on the models (field order, no timestamps).
"""

from __future__ import annotations

import inspect
import json
import re
import types
from collections.abc import Iterator
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from pipelines import paths
from pipelines.recipe.schema import Recipe

REFERENCE_FILE = paths.REPO_ROOT / "docs" / "recipes.md"

_HEADER = """\
# Recipe reference

<!-- Generated from pipelines/recipe/ by `make docs`; edit the schema, not this file. -->

A recipe is one YAML file in `recipes/`; its file stem is the recipe id (lower-case
letters, digits, `-` or `_`). It holds only what differs from the defaults below.
Unknown keys, duplicate keys, wrong types and out-of-range values are refused with a
message that names the file and the key; the rules that tie several keys together are
listed with the section that checks them.
"""

# How each annotated_types constraint pydantic keeps in FieldInfo.metadata reads.
_CONSTRAINTS: dict[type, tuple[str, str]] = {
    annotated_types.Gt: ("gt", "> {}"),
    annotated_types.Ge: ("ge", ">= {}"),
    annotated_types.Lt: ("lt", "< {}"),
    annotated_types.Le: ("le", "<= {}"),
    annotated_types.MinLen: ("min_length", "length >= {}"),
}


def recipe_sections() -> Iterator[tuple[str, type[BaseModel]]]:
    """(dotted key, model) of the top level and every section under it, depth first in
    field order; the top level's key is ''."""
    yield from _walk("", Recipe)


def recipe_reference_markdown() -> str:
    """The whole reference, as docs/recipes.md holds it."""
    sections = list(recipe_sections())
    out = [_HEADER]
    out.append("Sections: " + ", ".join(_link(key) for key, _ in sections if key) + ".\n")
    for key, model in sections:
        out.append(_render_section(key, model))
    return "\n".join(out)


def _walk(prefix: str, model: type[BaseModel]) -> Iterator[tuple[str, type[BaseModel]]]:
    yield prefix, model
    for name, field in model.model_fields.items():
        sub = _section_model(field.annotation)
        if sub is not None:
            key = field.alias or name
            yield from _walk(f"{prefix}.{key}" if prefix else key, sub)


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The section model behind `Section` or `Section | None`; None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    args = [a for a in get_args(annotation) if a is not type(None)]
    models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
    if not models:
        return None
    if get_origin(annotation) in (Union, types.UnionType) and len(args) == 1:
        return models[0]
    # Fail loudly rather than leave a nested section out of the reference.
    raise TypeError(f"the reference cannot render a section typed {annotation!r}")


def _anchor(key: str) -> str:
    # GitHub's heading anchors drop dots and backticks: "## `train.dpo`" -> #traindpo.
    return key.replace(".", "") if key else "top-level"


def _link(key: str) -> str:
    return f"[`{key}`](#{_anchor(key)})"


def _render_section(key: str, model: type[BaseModel]) -> str:
    lines = [f"## `{key}`" if key else "## Top level", ""]
    if model.__doc__:
        lines += [inspect.cleandoc(model.__doc__), ""]
    lines += ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        field_key = field.alias or name
        cells = [
            f"`{field_key}`",
            _type_cell(f"{key}.{field_key}" if key else field_key, field),
            _default_cell(field),
            _escape(field.description or ""),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _type_cell(key: str, field: FieldInfo) -> str:
    if _section_model(field.annotation) is not None:
        optional = type(None) in get_args(field.annotation)
        return f"section {_link(key)}" + (" or `null`" if optional else "")
    text = _code(_type_text(field.annotation))
    limits = [_constraint_text(item) for item in field.metadata]
    return text + (f" ({', '.join(limits)})" if limits else "")


def _type_text(annotation: Any) -> str:
    if annotation is type(None):
        return "null"
    origin = get_origin(annotation)
    if origin is Literal:
        return " | ".join(json.dumps(value) for value in get_args(annotation))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_text(arg) for arg in get_args(annotation))
    if origin is list:
        return f"list[{_type_text(get_args(annotation)[0])}]"
    if isinstance(annotation, type):
        return annotation.__name__
    raise TypeError(f"the reference cannot render the type {annotation!r}")


def _constraint_text(item: Any) -> str:
    if type(item) not in _CONSTRAINTS:  # a new kind of constraint: teach the reference
        raise TypeError(f"the reference cannot render the constraint {item!r}")
    attribute, template = _CONSTRAINTS[type(item)]
    return _escape(template.format(json.dumps(getattr(item, attribute))))


def _default_cell(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "its defaults"
    return _code(json.dumps(value))


def _code(text: str) -> str:
    # A pipe would end the table cell, even inside a code span.
    return "`" + text.replace("|", "\\|") + "`"


def _escape(text: str) -> str:
    # As in _code, and '<name>' would be read as an HTML tag ('<= 1' would not).
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text.replace("|", "\\|"))
