"""Reading recipe files: safe YAML without duplicate keys, validation errors that name the
file and the key (with a did-you-mean), and a recipe's identity (file stem, content hash).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines import paths
from pipelines.recipe.schema import Recipe, Sections

RECIPE_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the file and the key."""


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

# A recipe is small, plain data: these limits refuse a hostile file before anything reads it.
MAX_RECIPE_BYTES = 1_000_000
MAX_YAML_NODES = 100_000  # after expanding aliases (a "billion laughs" file expands to 10^9)
MAX_YAML_DEPTH = 32
_PLAIN_TAGS = frozenset(tag for tag in _UniqueKeyLoader.yaml_constructors if tag is not None)


def _check_plain_data(root: yaml.Node, source: str) -> None:
    """Refuse tags other than YAML's plain types (`!!python/...` and custom ones, named with
    the key that holds them), alias cycles, and aliases that expand beyond MAX_YAML_NODES."""
    sizes: dict[int, int] = {}  # id(node) -> expanded size; an alias is the same node again
    open_nodes: set[int] = set()

    def size(node: yaml.Node, key: str, depth: int) -> int:
        where = key or "recipe"
        if node.tag not in _PLAIN_TAGS:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise RecipeError(
                f"{source}: not valid YAML for a recipe: {where}: tag {tag} is not allowed (a "
                "recipe is plain data: mappings, lists, strings, numbers, booleans); remove it"
            )
        if id(node) in open_nodes:
            raise RecipeError(f"{source}: {where}: a YAML alias refers to itself")
        if id(node) in sizes:
            return sizes[id(node)]
        if depth > MAX_YAML_DEPTH:
            raise RecipeError(f"{source}: {where}: nested deeper than {MAX_YAML_DEPTH} levels")
        open_nodes.add(id(node))
        total = 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value in node.value:
                total += size(key_node, where, depth + 1)
                name = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                total += size(value, f"{key}.{name}" if key else str(name), depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                total += size(item, f"{where}[{index}]", depth + 1)
        open_nodes.discard(id(node))
        if total > MAX_YAML_NODES:
            raise RecipeError(
                f"{source}: {where}: expands to more than {MAX_YAML_NODES} values (YAML aliases "
                "repeating aliases?); a recipe is a few dozen keys"
            )
        sizes[id(node)] = total
        return total

    size(root, "", 0)


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
    shown = repr(error.get("input"))
    shown = shown if len(shown) <= 200 else shown[:200] + "..."
    return f"{location}: {error['msg']} (got {shown})"


def parse_recipe(text: str, source: str = "<recipe>") -> Recipe:
    if len(text) > MAX_RECIPE_BYTES:
        raise RecipeError(f"{source}: larger than {MAX_RECIPE_BYTES} bytes; a recipe is a few keys")
    loader = _UniqueKeyLoader(text)  # a SafeLoader subclass
    try:
        node = loader.get_single_node()  # composed, nothing constructed yet
        if node is not None:
            _check_plain_data(node, source)
        raw = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise RecipeError(f"{source}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
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
    if path.stat().st_size > MAX_RECIPE_BYTES:
        raise RecipeError(f"{path}: larger than {MAX_RECIPE_BYTES} bytes; a recipe is a few keys")
    content = path.read_bytes()
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecipeError(f"{path}: not UTF-8 text ({exc})") from None
    spec = parse_recipe(text, source=str(path))
    files = [("data.sources", source) for source in spec.data.sources]
    if spec.train.rehearsal:
        files.append(("train.rehearsal.source", spec.train.rehearsal.source))
    if spec.eval.retrieval:
        files += [("eval.retrieval.corpus", source) for source in spec.eval.retrieval.corpus]
    for key, source in files:
        _check_contained(path, key, source)
        if not (paths.sources_root() / source).is_file():
            raise RecipeError(
                f"{path}: {key}: file '{source}' not found under {paths.sources_root()} "
                "(run `make data` to import the embedded corpora, or fix the path)"
            )
    return LoadedRecipe(
        id=path.stem, path=path, sha256=hashlib.sha256(content).hexdigest(), spec=spec
    )


def _check_contained(path: Path, key: str, source: str) -> None:
    """Data files stay under the data root: a relative path without '..' that, symlinks
    resolved, is still inside it (a recipe cannot make rung read ~/.ssh or /etc)."""
    root = paths.sources_root()
    if Path(source).is_absolute() or ".." in Path(source).parts:
        raise RecipeError(
            f"{path}: {key}: '{source}' must be relative to the data root {root}, without "
            "'..' (e.g. data/address/addresses.jsonl): data is read from there only"
        )
    resolved = (root / source).resolve()
    if not resolved.is_relative_to(root):
        raise RecipeError(
            f"{path}: {key}: '{source}' resolves to {resolved}, outside the data root {root} "
            "(a symlink leading out?); copy the file under data/ and version it with DVC"
        )


def recipe_path(recipe_id: str) -> Path:
    return paths.recipes_dir() / f"{recipe_id}.yaml"


def list_recipe_ids() -> list[str]:
    return sorted(p.stem for p in paths.recipes_dir().glob("*.yaml"))
