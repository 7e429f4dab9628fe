"""Reuse an expensive asset's outputs when nothing it depends on has changed.

An asset's cache key hashes three things: its code version (the source of the module
that implements it and of every `pipelines` module that module imports, read from the
import statements rather than a hand-kept file list), the parts of the recipe it reads
(`RECIPE_PARTS`: changing only `eval` leaves the data and training keys alone), and the
content hashes of its inputs (data versions). A materialization stores its output value
under the key with each file the value names (its size and sha256); a later run of the same
recipe with the same key reuses it only if every one of those files still has that content,
hashed again on each lookup (a file deleted, truncated or altered since means recompute).
A no-op re-run therefore cleans, splits, trains and evaluates nothing.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pipelines import paths
from pipelines.lib.hashing import sha256_file
from pipelines.recipe import Recipe

# Only modules of this package count towards a code version; third-party code is pinned
# by the lock files instead.
_PACKAGE = "pipelines"


# The recipe parts (a section, or section.field) each cached asset reads. Inputs that come
# as files (the system prompt inside the train file, say) are covered by their hashes.
RECIPE_PARTS: dict[str, tuple[str, ...]] = {
    # What the base model is asked before training, and the target that may stop the climb
    # (the gate's other settings judge the tune only).
    "cheap_rungs": (
        "eval.task",
        "eval.labels",
        "eval.few_shot_k",
        "eval.few_shot_selection",
        "eval.max_new_tokens",
        "eval.batch_size",
        "eval.probes",
        "eval.retrieval",
        "eval.target",
        "eval.gate.primary_metric",
        "data.seed",
    ),
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


def _module_file(module: str, root: Path) -> Path | None:
    """The source file of `module` under `root` (a package's `__init__.py`), or None."""
    base = root.joinpath(*module.split("."))
    for file in (base / "__init__.py", base.with_name(base.name + ".py")):
        if file.is_file():
            return file
    return None


def _imported_modules(module: str, file: Path, root: Path) -> set[str]:
    """Every `pipelines` module `file` imports anywhere (functions, TYPE_CHECKING blocks
    included), relative imports resolved; `from pkg import name` names the submodule
    `pkg.name` when that is a module, else the package itself."""
    is_package = file.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(file.read_bytes(), filename=str(file))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                if node.level - 1 >= len(parts):
                    raise ImportError(f"{file}: relative import beyond the top-level package")
                anchor = ".".join(parts[: len(parts) - (node.level - 1)])
                base = f"{anchor}.{node.module}" if node.module else anchor
            else:
                base = node.module or ""
            found.add(base)
            for alias in node.names:
                if alias.name != "*" and _module_file(f"{base}.{alias.name}", root):
                    found.add(f"{base}.{alias.name}")
    return {name for name in found if name == _PACKAGE or name.startswith(_PACKAGE + ".")}


def _closure_sources(module: str, root: Path) -> dict[str, bytes]:
    """Source bytes of `module` and every `pipelines` module it imports, transitively;
    importing a module runs its parent packages' `__init__.py`, so those count too."""
    if module != _PACKAGE and not module.startswith(_PACKAGE + "."):
        raise ValueError(f"{module!r} is not a module of the {_PACKAGE!r} package")
    sources: dict[str, bytes] = {}
    pending: list[tuple[str, str | None]] = [(module, None)]
    while pending:
        name, importer = pending.pop()
        if name in sources:
            continue
        file = _module_file(name, root)
        if file is None:
            via = f" (imported by {importer})" if importer else ""
            raise ModuleNotFoundError(f"module {name!r}{via} not found under {root}", name=name)
        sources[name] = file.read_bytes()
        parents = [name.rsplit(".", depth)[0] for depth in range(1, name.count(".") + 1)]
        pending.extend((parent, name) for parent in parents)
        pending.extend((imported, name) for imported in _imported_modules(name, file, root))
    return sources


def code_closure(module: str, root: Path = paths.REPO_ROOT) -> list[str]:
    """Sorted names of the `pipelines` modules whose source is `module`'s code version."""
    return sorted(_closure_sources(module, root))


@functools.cache
def code_version(module: str, root: Path = paths.REPO_ROOT) -> str:
    """Hash of the source of `module` (dotted, e.g. 'pipelines.defs.training_set') and of
    every `pipelines` module it statically imports, transitively. Read once per process:
    the code this process runs, as Dagster's code version says."""
    digest = hashlib.sha256()
    for name, source in sorted(_closure_sources(module, root).items()):
        digest.update(f"{name}\0{len(source)}\0".encode() + source)
    return digest.hexdigest()[:16]


# keys that change how a stage runs, never what it produces
UNKEYED = {"train": ("checkpoint_steps",)}


def recipe_parts(recipe: Recipe, parts: Iterable[str]) -> dict[str, Any]:
    """The named recipe parts as JSON values, e.g. {'eval': {...}, 'data.seed': 42}."""
    dumped = recipe.model_dump(mode="json")
    for section, keys in UNKEYED.items():
        for key in keys:
            dumped[section].pop(key, None)
    out = {}
    for part in parts:
        value: Any = dumped
        for name in part.split("."):
            value = value[name]
        out[part] = value
    return out


def cache_key(asset: str, code: str, recipe: Recipe, inputs: Mapping[str, Any]) -> str:
    """The key under which `asset`'s output for these inputs is stored; `code` is the code
    version of the module implementing it (`code_version(...)`)."""
    payload = {
        "asset": asset,
        "code": code,
        "recipe": recipe_parts(recipe, RECIPE_PARTS[asset]),
        "inputs": dict(inputs),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def _entry(recipe_id: str, asset: str, key: str) -> Path:
    return paths.asset_cache_dir() / recipe_id / asset / f"{key}.json"


def _fingerprint(file: str | Path) -> dict[str, Any]:
    path = Path(file)
    return {"path": str(path), "size": path.stat().st_size, "sha256": sha256_file(path)}


def _unchanged(record: Any) -> bool:
    """The file still has the size and sha256 it had when stored (recomputed, not trusted)."""
    if not isinstance(record, dict) or not {"path", "size", "sha256"} <= record.keys():
        return False  # an entry from before content hashes: nothing to check it against
    path = Path(record["path"])
    try:
        return path.stat().st_size == record["size"] and sha256_file(path) == record["sha256"]
    except OSError:  # deleted, or no longer a readable file
        return False


def lookup(recipe_id: str, asset: str, key: str) -> dict[str, Any] | None:
    """The stored entry {value, files, dagster_run_id, stored_at} if it is still usable:
    readable, and every file it names has the content (size, sha256) it was stored with."""
    entry = _entry(recipe_id, asset, key)
    try:
        stored = json.loads(entry.read_text())
    except (OSError, ValueError):  # no entry, or not one this code wrote whole
        return None
    if not isinstance(stored, dict) or not {"value", "files", "dagster_run_id"} <= stored.keys():
        return None
    if not all(_unchanged(record) for record in stored["files"]):
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
    """Remember `value` under `key` with the size and sha256 of each of `files` (what must
    be unchanged for it to be reused). The entry appears whole or not at all: written to a
    unique .partial file, flushed to disk, then renamed over the entry."""
    entry = _entry(recipe_id, asset, key)
    entry.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "value": dict(value),
        "files": [_fingerprint(f) for f in files],
        "dagster_run_id": dagster_run_id,
        "stored_at": time.time(),
    }
    partial = entry.with_name(f"{entry.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")
    try:
        with partial.open("w", encoding="utf-8") as handle:
            handle.write(json.dumps(record, indent=1, default=str))
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(entry)
    finally:
        partial.unlink(missing_ok=True)
    return entry
