"""The stages before training, one function each: the base model, raw data (as DVC
versions it), cleaned data (validated, normalized, deduplicated, within sequence_len)
and the split (train and held-out files plus the data card). The assets in
pipelines/defs/ only call these."""

from __future__ import annotations

from pathlib import Path

from pipelines import paths
from pipelines.lib import dataset, state_profile
from pipelines.lib.asset_values import BaseModelValue, CleanedData, RawData, Split, StageError
from pipelines.lib.base_model import resolve_base_model
from pipelines.lib.data_card import build_data_card
from pipelines.lib.data_version import (
    DataVersionError,
    current_data_version,
    push_recorded_version,
)
from pipelines.lib.raw_sources import count_rows
from pipelines.lib.token_length import ChatTokenCounter
from pipelines.recipe import LoadedRecipe


def load_base_model(recipe: LoadedRecipe) -> BaseModelValue:
    """The recipe's base model, local and offline; its data version is the weights' sha256."""
    model = resolve_base_model(recipe.spec.model.base_model)
    return BaseModelValue(
        id=model.id, path=str(model.path), sha256=model.sha256, weights=model.weights
    )


def load_raw_data(recipe: LoadedRecipe) -> RawData:
    """The recipe's source files at the data version data.dvc records (pushed to the
    profile's DVC remote when that is shared)."""
    try:
        md5 = current_data_version()
        if not paths.sources_root_overridden() and not state_profile.dvc_remote().is_local:
            push_recorded_version()  # a shared remote: teammates can restore this version
    except DataVersionError as exc:
        raise StageError(str(exc)) from None
    root = paths.sources_root()  # the repository, or a reproduction's restored data version
    sources = [root / s for s in recipe.spec.data.sources]
    return RawData(
        sources=[str(s) for s in sources],
        data_md5=md5,
        source_sha256={str(s.relative_to(root)): dataset.sha256_file(s) for s in sources},
        rows=sum(count_rows(s) for s in sources),
    )


def clean_data(
    recipe: LoadedRecipe, raw: RawData, base_model: BaseModelValue, folder: Path
) -> CleanedData:
    """Validate (quarantine bad rows), normalize, dedupe, and keep rows within sequence_len;
    fails when more than data.max_bad_fraction of rows are bad or nothing is left."""
    data = recipe.spec.data
    result = dataset.clean_sources(
        [Path(s) for s in raw.sources],
        data,
        count_tokens=ChatTokenCounter(Path(base_model.path)).count,
        sequence_len=recipe.spec.train.sequence_len,
        # As the recipe names them: the same rows (and hashes) wherever the data root is.
        names=list(data.sources),
    )
    written = dataset.write_clean_outputs(result, folder)
    problem = result.failure(data.max_bad_fraction)
    if problem:
        raise StageError(
            f"recipe {recipe.id}: {problem}; every bad row with its reason is in "
            f"{written['quarantine_file']}"
        )
    return CleanedData(recipe_id=recipe.id, counts_reconcile=result.reconciles(), **written)


def split_data(recipe: LoadedRecipe, raw: RawData, cleaned: CleanedData, folder: Path) -> Split:
    """Hash-based, group-aware train/held-out split, stable as data grows; and the data card."""
    data = recipe.spec.data
    result = dataset.split_rows(dataset.read_jsonl(Path(cleaned.file)), data)
    written = dataset.write_split(result, folder)
    card = build_data_card(
        folder / "data_card",
        recipe_id=recipe.id,
        counts=cleaned.counts,
        drop_reasons=cleaned.drop_reasons,
        train=result.train,
        heldout=result.heldout,
        hashes={
            "data.dvc md5 (raw)": raw.data_md5,
            "cleaned sha256": cleaned.sha256,
            "train sha256": written["train_sha256"],
            "held-out sha256": written["heldout_sha256"],
        },
        sequence_len=recipe.spec.train.sequence_len,
        notes=[f"rebalanced training rows ({data.balance.rebalance}): {written['rebalanced']}"]
        if "rebalanced" in written
        else [],
    )
    # Beside the card, not in its folder: that folder is logged to MLflow as it is.
    embedded = folder / "data_card_embedded.md"
    embedded.write_text(card.embedded, encoding="utf-8")
    return Split(
        recipe_id=recipe.id,
        cleaned_sha256=cleaned.sha256,
        label_field=data.label_field,
        data_card=str(card.files[0]),
        data_card_embedded=str(embedded),
        **written,
    )
