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


class DedupeSection(Section):
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


class DataSection(Section):
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
        default=5, ge=1, description="Block training when the held-out side has fewer rows."
    )
    seed: int = Field(default=42, description="Seed of the row sample and the split.")
    max_rows: int | None = Field(
        default=None,
        gt=1,
        description="Keep a deterministic sample of this many cleaned rows (small CPU runs).",
    )
    skip_rows: int = Field(
        default=0,
        ge=0,
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


class ModelSection(Section):
    base_model: str = Field(
        default=EMBEDDED_BASE_MODEL,
        description=(
            f"'{EMBEDDED_BASE_MODEL}' (embedded, offline), a local model directory, "
            "or a Hugging Face Hub id (needs internet and a prior download)."
        ),
    )


class DpoSection(Section):
    beta: float = Field(
        default=0.1, gt=0.0, description="DPO temperature: how far from the reference to move."
    )
    pairs: Literal["data", "on_policy"] = Field(
        default="on_policy",
        description=(
            "data: the rows are preference pairs (data.format: preference); on_policy: the "
            "gold answer is chosen and the base model's own wrong answer is rejected."
        ),
    )
    sft_weight: float = Field(
        default=0.0,
        ge=0.0,
        description=(
            "Add the chosen answers' language-model loss with this weight (RPO). Pure DPO can "
            "lower the chosen answers' likelihood too, only less than the rejected ones'; "
            "the added term keeps the model producing the chosen answers."
        ),
    )


class DistillSection(Section):
    teacher: str = Field(
        description=(
            "A local model or adapter folder, models:/<name>@<alias>, or the URL of an "
            "OpenAI-compatible endpoint (http://host:port/v1)."
        )
    )
    teacher_model: str | None = Field(
        default=None, description="Model name sent to an HTTP teacher endpoint."
    )
    api_key_env: str | None = Field(
        default=None,
        description="Environment variable holding the HTTP teacher's API key (never logged).",
    )
    max_new_tokens: int = Field(default=128, gt=0, description="Teacher's answer budget.")
    temperature: float = Field(default=0.0, ge=0.0, description="Teacher sampling temperature.")


class RehearsalSection(Section):
    """Self-rehearsal against forgetting: the base model's own answers to unrelated prompts
    join the training rows, without the recipe's system prompt, so the adapter learns to
    change the model's behaviour for the task only and to leave other requests alone."""

    source: str = Field(
        description="File of unrelated prompts, relative to the repository root (under data/): "
        ".jsonl, .csv or .parquet."
    )
    field: str = Field(description="The field or column holding one prompt's text.")
    rows: int = Field(gt=0, description="How many prompts (a deterministic sample by hash).")
    max_new_tokens: int = Field(default=96, gt=0, description="The base model's answer budget.")


class TrainSection(Section):
    method: Literal["sft", "dpo", "distill"] = Field(
        default="sft",
        description=(
            "sft: imitate the answers; dpo: prefer chosen over rejected answers (preference "
            "pairs); distill: imitate a teacher's answers to the training prompts."
        ),
    )
    adapter: Literal["lora", "qlora"] = Field(
        default="lora", description="PEFT adapter; qlora loads the base in 4 bits (CUDA only)."
    )
    init_adapter: str | None = Field(
        default=None,
        description=(
            "Start from this LoRA adapter instead of a fresh one: a local adapter folder or "
            "models:/<name>@<alias> (e.g. DPO on top of the SFT champion)."
        ),
    )
    dpo: DpoSection = Field(default_factory=lambda: DpoSection())
    distill: DistillSection | None = Field(
        default=None, description="The teacher, for method: distill."
    )
    rehearsal: RehearsalSection | None = Field(
        default=None,
        description="Mix the base model's own answers to unrelated prompts into training "
        "(sft, distill), against forgetting; checked by the forgetting probes.",
    )
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


# Metrics a gate may compare, per eval.task; the first is the default primary metric.
GATE_METRICS: dict[str, tuple[str, ...]] = {
    "extraction": ("field_f1", "exact_match", "valid_json", "lenient_field_f1"),
    "classification": ("macro_f1", "accuracy"),
    "free_text": ("rouge_l", "chrf"),
}


class GateSection(Section):
    primary_metric: str | None = Field(
        default=None,
        description="Metric the gate compares; default per task: field_f1, macro_f1, rouge_l.",
    )
    min_margin: float = Field(
        default=0.0,
        ge=0.0,
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
        description="Train-sample minus held-out primary metric above this is flagged.",
    )
    block_on_overfit: bool = Field(
        default=False, description="Make an overfitting flag a NO-SHIP reason."
    )


class EvalSection(Section):
    task: Literal["extraction", "classification", "free_text"] = Field(
        default="free_text",
        description="How answers are scored: JSON fields, one label, or open text.",
    )
    labels: list[str] | None = Field(
        default=None,
        description="Class labels (classification); default: the distinct held-out answers.",
    )
    few_shot_k: int = Field(
        default=3, ge=1, description="Training examples in the few-shot prompt."
    )
    few_shot_selection: Literal["fixed", "similar"] = Field(
        default="fixed",
        description="'fixed': the same k examples for every row; "
        "'similar': the k nearest (TF-IDF).",
    )
    max_new_tokens: int = Field(default=80, gt=0, description="Generation budget per answer.")
    batch_size: int = Field(default=16, gt=0, description="Rows per generation batch.")
    train_sample_rows: int = Field(
        default=30, ge=0, description="Training rows the tune answers, for the overfitting gap."
    )
    probes: bool = Field(default=True, description="Run the forgetting probes.")
    bootstrap_resamples: int = Field(default=1000, ge=100, description="Paired bootstrap draws.")
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0, description="Interval confidence.")
    num_samples: int = Field(
        default=5, ge=0, description="Held-out rows whose answers are shown in the report."
    )
    gate: GateSection = Field(default_factory=GateSection)

    @model_validator(mode="after")
    def _consistent_with_task(self) -> EvalSection:
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


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


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
    if error["type"] == "value_error":  # a cross-field rule: its message says what to change
        return f"{location or 'recipe'}: {error['msg'].removeprefix('Value error, ')}"
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
    files = [("data.sources", source) for source in spec.data.sources]
    if spec.train.rehearsal:
        files.append(("train.rehearsal.source", spec.train.rehearsal.source))
    for key, source in files:
        if not (paths.sources_root() / source).is_file():
            raise RecipeError(
                f"{path}: {key}: file '{source}' not found under {paths.sources_root()} "
                "(run `make data` to import the embedded corpora, or fix the path)"
            )
    return LoadedRecipe(
        id=path.stem, path=path, sha256=hashlib.sha256(content).hexdigest(), spec=spec
    )


def recipe_path(recipe_id: str) -> Path:
    return paths.recipes_dir() / f"{recipe_id}.yaml"


def list_recipe_ids() -> list[str]:
    return sorted(p.stem for p in paths.recipes_dir().glob("*.yaml"))
