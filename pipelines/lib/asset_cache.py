"""Reuse an expensive asset's outputs when nothing it depends on has changed.

An asset's cache key hashes three things: its code version (the source files that
implement it), the parts of the recipe it reads (`RECIPE_PARTS`: changing only
`eval` leaves the data and training keys alone), and the content hashes of its
inputs (data versions). A materialization stores its output value under the key;
a later run of the same recipe with the same key reuses it, provided every file the
value names still exists. A no-op re-run therefore cleans, splits, trains and
evaluates nothing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pipelines import paths
from pipelines.recipe import Recipe

_PACKAGE = paths.REPO_ROOT / "pipelines"

# Source files (under pipelines/) whose content is each asset's code version.
CODE_FILES: dict[str, tuple[str, ...]] = {
    "base_model": ("lib/base_model.py",),
    "raw_data": ("lib/data_version.py", "lib/raw_sources.py"),
    "cleaned_data": (
        "lib/dataset.py",
        "lib/conversations.py",
        "lib/raw_sources.py",
        "lib/near_duplicates.py",
        "lib/token_length.py",
    ),
    "split": ("lib/dataset.py", "lib/splitting.py", "lib/near_duplicates.py", "lib/data_card.py"),
    "training_set": (
        "defs/training_set.py",
        "lib/training_set.py",
        "lib/teacher.py",
        "worker/evaluate.py",
        "worker/generation.py",
    ),
    "training_run": (
        "lib/axolotl_config.py",
        "lib/data_lineage.py",
        "worker/train.py",
        "worker/axolotl_seed.py",
    ),
    "evaluation": (
        "lib/evaluation.py",
        "lib/metrics.py",
        "lib/gate.py",
        "lib/probes.py",
        "lib/report.py",
        "worker/evaluate.py",
        "worker/generation.py",
    ),
    "registered_adapter": ("lib/registry.py", "lib/aliases.py", "worker/chat_model.py"),
}

# The recipe parts (a section, or section.field) each cached asset reads. Inputs that come
# as files (the system prompt inside the train file, say) are covered by their hashes.
RECIPE_PARTS: dict[str, tuple[str, ...]] = {
    "cleaned_data": ("data", "train.sequence_len"),
    "split": ("data",),
    "training_set": (
        "train.method",
        "train.dpo.pairs",
        "train.distill",
        "train.rehearsal",
        "eval.task",
        "eval.max_new_tokens",
        "data.seed",
    ),
    "training_run": ("model", "train"),
    "evaluation": ("eval", "data.seed", "train.sequence_len"),
}


@functools.cache
def code_version(asset: str) -> str:
    """Hash of the asset's implementation files (missing ones are skipped), read once per
    process: the code this process runs, as Dagster's code version says."""
    digest = hashlib.sha256(asset.encode())
    for name in CODE_FILES[asset]:
        file = _PACKAGE / name
        if file.is_file():
            digest.update(name.encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:16]


def recipe_parts(recipe: Recipe, parts: Iterable[str]) -> dict[str, Any]:
    """The named recipe parts as JSON values, e.g. {'eval': {...}, 'data.seed': 42}."""
    dumped = recipe.model_dump(mode="json")
    out = {}
    for part in parts:
        value: Any = dumped
        for name in part.split("."):
            value = value[name]
        out[part] = value
    return out


def cache_key(asset: str, recipe: Recipe, inputs: Mapping[str, Any]) -> str:
    """The key under which `asset`'s output for these inputs is stored."""
    payload = {
        "asset": asset,
        "code": code_version(asset),
        "recipe": recipe_parts(recipe, RECIPE_PARTS[asset]),
        "inputs": dict(inputs),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def _entry(recipe_id: str, asset: str, key: str) -> Path:
    return paths.asset_cache_dir() / recipe_id / asset / f"{key}.json"


def lookup(recipe_id: str, asset: str, key: str) -> dict[str, Any] | None:
    """The stored entry {value, files, dagster_run_id, stored_at} if it is still usable."""
    entry = _entry(recipe_id, asset, key)
    if not entry.is_file():
        return None
    stored = json.loads(entry.read_text())
    if not all(Path(file).exists() for file in stored["files"]):
        return None
    return stored


def store(
    recipe_id: str,
    asset: str,
    key: str,
    value: Mapping[str, Any],
    files: Iterable[str | Path],
    dagster_run_id: str,
) -> Path:
    """Remember `value` under `key`; `files` are what must still exist for it to be reused."""
    entry = _entry(recipe_id, asset, key)
    entry.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "value": dict(value),
        "files": [str(f) for f in files],
        "dagster_run_id": dagster_run_id,
        "stored_at": time.time(),
    }
    partial = entry.with_suffix(".partial")
    partial.write_text(json.dumps(record, indent=1, default=str))
    partial.replace(entry)
    return entry
