"""What `rung serve` serves: registered versions resolved to local folders (orchestrator side).

Each `--model` is `models:/<name>@<alias>`, `models:/<name>/<version>` or a local
LoRA adapter folder, optionally prefixed by the name clients will ask for
(`teacher=models:/address-extraction-teacher@champion`). Registered versions are
downloaded once from MLflow into the cache (`<cache>/adapters/<name>-v<version>-<run>`)
and carry their base model's pointer (id, path, weights sha256), which the server
checks against the base it loads. The result is the spec that
pipelines/worker/serve.py starts from, or a vLLM command for GPU machines.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipelines import paths
from pipelines.lib.base_model import BaseModel, BaseModelError, resolve_base_model

BASE = "base"  # the name that asks the server for the base model itself
REFERENCE = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ServingError(RuntimeError):
    pass


@dataclass(frozen=True)
class ServedModel:
    name: str  # what clients put in "model"
    path: str  # the adapter folder (adapter_config.json + adapter_model.safetensors)
    reference: str  # what the user asked for
    version: str | None = None  # registry version (None: a local folder)
    model_uri: str | None = None  # models:/<name>/<version>
    base_model: dict[str, Any] | None = None  # {id, path, sha256, weights}, from the registry


def _adapter_folder(root: Path) -> Path | None:
    found = sorted(root.rglob("adapter_config.json"))
    return found[0].parent if found else None


def resolve_served_model(argument: str) -> ServedModel:
    """`[name=]models:/x@alias | [name=]models:/x/N | [name=]folder` -> a local adapter."""
    served_name, _, reference = argument.rpartition("=") if "=" in argument else ("", "", argument)
    match = REFERENCE.match(reference)
    if match:
        return _registered(served_name, reference, match)
    folder = (paths.REPO_ROOT / reference).expanduser()
    if not (folder / "adapter_config.json").is_file():
        raise ServingError(
            f"{reference!r} is neither models:/<name>@<alias>, models:/<name>/<version>, nor a "
            "LoRA adapter folder (with adapter_config.json)"
        )
    return ServedModel(
        _checked_name(served_name or folder.resolve().name), str(folder.resolve()), reference
    )


def _checked_name(name: str) -> str:
    if not NAME.match(name) or name == BASE:
        raise ServingError(
            f"served model name {name!r}: use letters, digits, '.', '_' or '-' (and not "
            f"{BASE!r}, which asks for the base model); name it with NAME=models:/..."
        )
    return name


def _registered(served_name: str, reference: str, match: re.Match) -> ServedModel:
    import mlflow

    from pipelines.lib.tracking import configure_mlflow

    client = configure_mlflow()
    name, alias, number = match["name"], match["alias"], match["version"]
    try:
        version = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, number)
        )
    except mlflow.exceptions.MlflowException as exc:
        raise ServingError(
            f"{reference} is not in the MLflow registry ({exc.message}); ship a run of that "
            "recipe first, or see the registered versions in the MLflow UI"
        ) from None
    # The run id keeps apart same-numbered versions of different MLflow stores (tests, users).
    target = paths.cache_dir() / "adapters" / f"{name}-v{version.version}-{version.run_id[:12]}"
    if _adapter_folder(target) is None or not list(target.rglob("base_model.json")):
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version.version}", dst_path=str(target)
        )
    folder = _adapter_folder(target)
    pointers = sorted(target.rglob("base_model.json"))
    if folder is None or not pointers:
        raise ServingError(f"{reference} (version {version.version}) holds no LoRA adapter")
    return ServedModel(
        name=_checked_name(served_name or name),
        path=str(folder),
        reference=reference,
        version=str(version.version),
        model_uri=f"models:/{name}/{version.version}",
        base_model=json.loads(pointers[0].read_text()),
    )


def _pointer_folder(pointer: dict[str, Any]) -> Path:
    """The base model's recorded folder, or the same model in this machine's cache."""
    for folder in (Path(pointer["path"]), paths.models_cache_dir() / pointer["id"]):
        if (folder / "config.json").is_file():
            return folder
    raise ServingError(
        f"base model {pointer['id']!r} is neither at {pointer['path']} nor in "
        f"{paths.models_cache_dir()}; prepare it (`make model`) or pass --base"
    )


def choose_base(models: list[ServedModel], base: str | None) -> dict[str, Any]:
    """The base model to load: `--base` (a recipe's model.base_model: the embedded id, a
    folder, a cached Hub id), else the one the first registered version was trained on."""
    if base:
        try:
            found: BaseModel = resolve_base_model(base)
        except BaseModelError as exc:
            raise ServingError(str(exc).removeprefix("model.base_model: ")) from None
        return {
            "id": base,
            "path": str(found.path),
            "sha256": found.sha256,
            "weights": found.weights,
        }
    for model in models:
        if model.base_model:
            return {**model.base_model, "path": str(_pointer_folder(model.base_model))}
    raise ServingError(
        "no base model: only local adapter folders were given; name their base with --base "
        "(e.g. --base smollm2-135m-instruct)"
    )


def serve_spec(
    models: list[ServedModel],
    base: dict[str, Any],
    *,
    host: str = "127.0.0.1",
    port: int = 5001,
    max_batch: int = 8,
    batch_wait_ms: float = 10,
    traffic_max_mb: float | None = 64.0,
    traffic_keep: int = 3,
    shadows: list[str] = (),
) -> dict[str, Any]:
    """The JSON the model server starts from (see pipelines/worker/serve.py). `shadows`:
    "LIVE=SHADOW" pairs of served names (a copy of each request to LIVE goes to SHADOW)."""
    names = [m.name for m in models]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ServingError(
            f"two models would be served as {', '.join(map(repr, duplicated))}; name them: "
            "--model champion=models:/x@champion --model challenger=models:/x@challenger"
        )
    return {
        "shadows": _shadow_pairs(shadows, [BASE, *names], traffic_max_mb is not None),
        "base": base,
        "adapters": [{k: v for k, v in asdict(m).items() if k != "reference"} for m in models],
        "host": host,
        "port": port,
        "max_batch": max_batch,
        "batch_wait_ms": batch_wait_ms,
        "traffic": None
        if traffic_max_mb is None
        else {"dir": str(paths.traffic_dir()), "max_mb": traffic_max_mb, "keep": traffic_keep},
    }


def _shadow_pairs(pairs: list[str], served: list[str], logged: bool) -> dict[str, str]:
    shadows: dict[str, str] = {}
    for pair in pairs:
        live, _, shadow = pair.partition("=")
        if live not in served or shadow not in served or live == shadow or live in shadows:
            raise ServingError(
                f"--shadow {pair!r}: use LIVE=SHADOW, two different served names from {served} "
                "(e.g. --shadow champion=challenger), one shadow per live model"
            )
        shadows[live] = shadow
    if shadows and not logged:
        raise ServingError("--shadow logs both answers in the traffic log: drop --no-traffic-log")
    return shadows


def lora_rank(adapter_dir: str) -> int:
    config = json.loads((Path(adapter_dir) / "adapter_config.json").read_text())
    return int(config.get("r", 8))


def vllm_command(spec: dict[str, Any]) -> str:
    """The same models under vLLM's multi-LoRA server (GPU machines), as one shell line."""
    adapters = spec["adapters"]
    words = [
        "vllm",
        "serve",
        spec["base"]["path"],
        "--host",
        spec["host"],
        "--port",
        str(spec["port"]),
    ]
    if adapters:
        rank = max(lora_rank(a["path"]) for a in adapters)
        words += [
            "--enable-lora",
            "--max-loras",
            str(len(adapters)),
            "--max-lora-rank",
            str(_vllm_rank(rank)),
            "--lora-modules",
        ]
        words += [f"{a['name']}={a['path']}" for a in adapters]
    return shlex.join(words)


def _vllm_rank(rank: int) -> int:
    """vLLM accepts --max-lora-rank from a fixed set; the smallest that holds `rank`."""
    for allowed in (1, 8, 16, 32, 64, 128, 256, 320, 512):
        if rank <= allowed:
            return allowed
    return rank
