"""The recipe schema: one YAML file per experiment, its stem is the recipe id.

A recipe holds only what differs from these defaults. Unknown keys are errors
(Axolotl silently ignores misspelled keys; rung must not), and every error names
the file and the key and says what to change.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipelines import paths

RECIPE_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
EMBEDDED_BASE_MODEL = "smollm2-135m-instruct"


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the file and the key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldMap(Section):
    prompt: str = Field(description="Raw-row field holding the user's input.")
    completion: str = Field(
        description="Raw-row field holding the answer; an object is written as compact JSON."
    )


class DataSection(Section):
    sources: list[str] = Field(
        min_length=1,
        description="JSONL files of raw rows, relative to the repository root (under data/).",
    )
    format: Literal["prompt_completion"] = Field(
        default="prompt_completion", description="How a raw row maps to a conversation."
    )
    fields: FieldMap = Field(description="Which raw-row fields are the prompt and completion.")
    system_prompt: str | None = Field(
        default=None, description="System message put before every conversation."
    )
    prompt_template: str = Field(
        default="{prompt}",
        description="User message; '{prompt}' is replaced by the row's prompt field.",
    )
    heldout_fraction: float = Field(
        default=0.15,
        gt=0.0,
        le=0.5,
        description="Share of rows held out for evaluation (the field's rule: 10-20%).",
    )
    seed: int = Field(default=42, description="Seed of the row sample and the split.")
    max_rows: int | None = Field(
        default=None,
        gt=1,
        description="Keep a deterministic sample of this many cleaned rows (small CPU runs).",
    )

    @model_validator(mode="after")
    def _template_uses_prompt(self) -> DataSection:
        if "{prompt}" not in self.prompt_template:
            raise ValueError("data.prompt_template must contain '{prompt}'")
        return self


class ModelSection(Section):
    base_model: str = Field(
        default=EMBEDDED_BASE_MODEL,
        description=(
            f"'{EMBEDDED_BASE_MODEL}' (embedded, offline), a local model directory, "
            "or a Hugging Face Hub id (needs internet and a prior download)."
        ),
    )


class TrainSection(Section):
    method: Literal["sft"] = Field(default="sft", description="Training objective.")
    adapter: Literal["lora"] = Field(default="lora", description="PEFT adapter type.")
    lora_r: int = Field(default=8, gt=0, le=512, description="LoRA rank.")
    lora_alpha: int = Field(default=16, gt=0, description="LoRA scaling numerator.")
    lora_dropout: float = Field(default=0.05, ge=0.0, lt=1.0, description="LoRA dropout.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: ["q_proj", "v_proj"],
        description="Modules that get adapters, or 'all-linear'.",
    )
    learning_rate: float = Field(default=5e-4, gt=0.0, lt=1.0, description="Peak learning rate.")
    lr_scheduler: Literal["cosine", "linear", "constant"] = Field(
        default="cosine", description="Learning-rate schedule."
    )
    warmup_steps: int = Field(default=0, ge=0, description="Linear warm-up steps.")
    num_epochs: float = Field(default=1.0, gt=0.0, description="Passes over the training split.")
    max_steps: int | None = Field(
        default=None, gt=0, description="Stop after this many optimizer steps (overrides epochs)."
    )
    micro_batch_size: int = Field(default=4, gt=0, description="Rows per forward pass.")
    gradient_accumulation_steps: int = Field(default=1, gt=0, description="Passes per step.")
    sequence_len: int = Field(default=256, ge=32, description="Maximum tokens per row.")
    sample_packing: bool = Field(
        default=False, description="Pack short rows into one sequence (pays off on GPU)."
    )
    logging_steps: int = Field(default=5, gt=0, description="Log train loss every N steps.")
    seed: int = Field(default=42, description="Training seed.")


class EvalSection(Section):
    max_new_tokens: int = Field(default=80, gt=0, description="Generation budget per answer.")
    batch_size: int = Field(default=8, gt=0, description="Held-out rows per forward pass.")
    num_samples: int = Field(
        default=5, ge=0, description="Held-out rows whose generated answers are shown."
    )


class RegisterSection(Section):
    name: str | None = Field(
        default=None, description="Registered model name in MLflow; defaults to the recipe id."
    )


class Recipe(Section):
    data: DataSection
    model: ModelSection = Field(default_factory=ModelSection)
    train: TrainSection = Field(default_factory=TrainSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    # 'register' would shadow BaseModel.register (abc), so the attribute is `registry`.
    registry: RegisterSection = Field(default_factory=RegisterSection, alias="register")


Sections = Literal["data", "model", "train", "eval", "registry"]


class LoadedRecipe(BaseModel):
    """A validated recipe with its identity: file stem, path and content hash."""

    model_config = ConfigDict(frozen=True)

    id: Annotated[str, Field(pattern=RECIPE_ID_PATTERN.pattern)]
    path: Path
    sha256: str
    spec: Recipe

    @property
    def registered_name(self) -> str:
        return self.spec.registry.name or self.id

    def section_hash(self, *names: Sections) -> str:
        """Hash of the named sections: a code version that changes only when they do."""
        payload = {name: getattr(self.spec, name).model_dump(mode="json") for name in names}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe loading that refuses duplicate keys instead of keeping the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def _describe(error: dict[str, Any], raw: Any) -> str:
    location = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        model: type[BaseModel] = Recipe
        for part in error["loc"][:-1]:
            field = next(
                (f for n, f in model.model_fields.items() if (f.alias or n) == str(part)), None
            )
            annotation = getattr(field, "annotation", None)
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                model = annotation
        allowed = [field.alias or name for name, field in model.model_fields.items()]
        close = difflib.get_close_matches(str(error["loc"][-1]), allowed, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(allowed)}"
        return f"{location}: unknown key ({hint})"
    if error["type"] == "missing":
        return f"{location}: required key is missing"
    return f"{location}: {error['msg']} (got {error.get('input')!r})"


def parse_recipe(text: str, source: str = "<recipe>") -> Recipe:
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise RecipeError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{source}: a recipe is a mapping with at least a 'data' section")
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        problems = "\n".join(f"  - {_describe(err, raw)}" for err in exc.errors())
        raise RecipeError(f"{source}: invalid recipe\n{problems}") from None


def load_recipe(path: str | Path) -> LoadedRecipe:
    path = Path(path).resolve()
    if not path.is_file():
        raise RecipeError(f"{path}: recipe file not found")
    if not RECIPE_ID_PATTERN.match(path.stem):
        raise RecipeError(
            f"{path}: the file name is the recipe id and must be lower-case letters, "
            "digits, '-' or '_' (e.g. address-extraction-lora.yaml)"
        )
    content = path.read_bytes()
    spec = parse_recipe(content.decode("utf-8"), source=str(path))
    for source in spec.data.sources:
        if not (paths.REPO_ROOT / source).is_file():
            raise RecipeError(
                f"{path}: data.sources: file '{source}' not found under {paths.REPO_ROOT} "
                "(run `make data` to import the embedded corpora, or fix the path)"
            )
    return LoadedRecipe(
        id=path.stem, path=path, sha256=hashlib.sha256(content).hexdigest(), spec=spec
    )


def recipe_path(recipe_id: str) -> Path:
    return paths.recipes_dir() / f"{recipe_id}.yaml"


def list_recipe_ids() -> list[str]:
    return sorted(p.stem for p in paths.recipes_dir().glob("*.yaml"))
