"""Test isolation: experiments go to a temporary state dir, recipes come from fixtures.

The recipe partitions are read when the Dagster definitions are imported, so the
environment is set here, before any test imports pipelines.defs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="rung-tests-"))
RECIPES_DIR = _SESSION_DIR / "recipes"
BROKEN_MODEL_DIR = _SESSION_DIR / "broken-model"
# A stand-in LoRA teacher (its weights are never loaded: the slice tests answer for it).
STAND_IN_ADAPTER_DIR = _SESSION_DIR / "stand-in-adapter"


def _prepare_recipes() -> None:
    shutil.copytree(FIXTURES / "recipes", RECIPES_DIR)
    # A base model whose weights are garbage: Axolotl crashes loading it.
    BROKEN_MODEL_DIR.mkdir()
    from pipelines.lib.base_model import embedded_model_dir

    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        source = embedded_model_dir() / name
        if source.exists():
            shutil.copy(source, BROKEN_MODEL_DIR / name)
    (BROKEN_MODEL_DIR / "model.safetensors").write_bytes(b"not a safetensors file")
    tiny = (RECIPES_DIR / "address-tiny.yaml").read_text()
    (RECIPES_DIR / "address-broken-model.yaml").write_text(
        tiny + f"model:\n  base_model: {BROKEN_MODEL_DIR}\n"
    )
    STAND_IN_ADAPTER_DIR.mkdir()
    (STAND_IN_ADAPTER_DIR / "adapter_config.json").write_text('{"r": 8}')
    (STAND_IN_ADAPTER_DIR / "adapter_model.safetensors").write_bytes(b"stand-in weights")
    dpo = (RECIPES_DIR / "address-dpo-tiny.yaml").read_text()
    (RECIPES_DIR / "address-distill-stand-in.yaml").write_text(
        dpo.replace(
            "  method: dpo\n  dpo: {sft_weight: 1.0}\n",
            "  method: distill\n"
            f"  distill: {{teacher: {STAND_IN_ADAPTER_DIR}, max_new_tokens: 48}}\n",
        )
    )


os.environ["RUNG_RECIPES_DIR"] = str(RECIPES_DIR)
os.environ["RUNG_STATE_DIR"] = str(_SESSION_DIR / "state")
_prepare_recipes()


@pytest.fixture(scope="session", autouse=True)
def _cleanup_session_dir():
    yield
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_run():
    """One real run of the tiny recipe (trains a model), shared by the end-to-end tests."""
    from pipelines.launch import run_recipe
    from pipelines.recipe import load_recipe, recipe_path

    recipe = load_recipe(recipe_path("address-tiny"))
    outcome = run_recipe(recipe)
    assert outcome.success, "the tiny recipe's run failed; see the Dagster log above"
    return recipe, outcome
