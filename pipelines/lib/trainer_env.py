"""Facts about the trainer environment (.venv-train), asked of its own Python."""

from __future__ import annotations

import json
import subprocess

from pipelines import paths

LINEAGE_PACKAGES = ("axolotl", "transformers", "peft", "torch")


def _ask(code: str) -> str:
    return subprocess.run(
        [str(paths.TRAINER_PYTHON), "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide a training result (lineage tags)."""
    return json.loads(
        _ask(
            "import importlib.metadata as m, json; "
            f"print(json.dumps({{p: m.version(p) for p in {LINEAGE_PACKAGES!r}}}))"
        )
    )


def cuda_available() -> bool:
    return _ask("import torch; print(torch.cuda.is_available())") == "True"
