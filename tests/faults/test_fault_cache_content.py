"""A cached output damaged after it was stored is never reused: the asset cache records
each file's size and sha256 and recomputes them on every lookup. A half-written entry
(.partial, or a torn entry file) is never read; the next store and lookup work."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from pipelines import paths
from pipelines.lib import asset_cache

RECIPE, ASSET, KEY = "fault-recipe", "training_run", "k" * 32


@pytest.fixture
def cached(tmp_path, monkeypatch) -> list[Path]:
    """An adapter-sized output (~10 MB) and a small log, stored under KEY."""
    monkeypatch.setenv("RUNG_STATE_DIR", str(tmp_path / "state"))
    adapter, log = tmp_path / "adapter_model.safetensors", tmp_path / "train.log"
    adapter.write_bytes(os.urandom(10 * 1024 * 1024))
    log.write_text("step 1 loss 1.7\n")
    asset_cache.store(RECIPE, ASSET, KEY, {"adapter": str(adapter)}, [adapter, log], "run-1")
    return [adapter, log]


def hit() -> dict | None:
    return asset_cache.lookup(RECIPE, ASSET, KEY)


def test_an_intact_output_is_reused_and_checking_it_is_cheap(cached, record_property):
    start = time.perf_counter()
    found = hit()
    elapsed = time.perf_counter() - start
    assert found is not None and found["dagster_run_id"] == "run-1"
    assert {f["path"] for f in found["files"]} == {str(p) for p in cached}
    assert all(len(f["sha256"]) == 64 and f["size"] > 0 for f in found["files"])
    record_property("lookup_seconds_10mb", round(elapsed, 3))
    assert elapsed < 5.0  # sha256 of ~10 MB: tens of milliseconds on this machine


def restore_by_recomputing(cached: list[Path]) -> None:
    """What the next run does after a miss: compute the output again and store it."""
    cached[0].write_bytes(os.urandom(1024))
    cached[1].write_text("recomputed\n")
    asset_cache.store(RECIPE, ASSET, KEY, {"adapter": str(cached[0])}, cached, "run-2")


@pytest.mark.parametrize("damage", ["altered", "truncated", "deleted", "replaced_by_folder"])
def test_a_damaged_output_is_never_reused(cached, damage):
    adapter = cached[0]
    if damage == "altered":  # same size, one byte flipped: only the hash can tell
        data = bytearray(adapter.read_bytes())
        data[len(data) // 2] ^= 0xFF
        adapter.write_bytes(bytes(data))
    elif damage == "truncated":  # a crash while the file was being copied
        with adapter.open("r+b") as handle:
            handle.truncate(4096)
    elif damage == "deleted":
        adapter.unlink()
    else:
        adapter.unlink()
        adapter.mkdir()
    assert hit() is None  # (a) a miss: the stage recomputes instead of using damaged output
    if damage == "replaced_by_folder":
        adapter.rmdir()
    # (b) the entry itself was not removed or rewritten by the refusal
    entry = paths.asset_cache_dir() / RECIPE / ASSET / f"{KEY}.json"
    assert json.loads(entry.read_text())["dagster_run_id"] == "run-1"
    # (c) the next normal operation: recompute, store, and the new entry is reused
    restore_by_recomputing(cached)
    assert hit()["dagster_run_id"] == "run-2"


def test_a_leftover_partial_entry_is_never_read(cached):
    folder = paths.asset_cache_dir() / RECIPE / ASSET
    entry = folder / f"{KEY}.json"
    complete = entry.read_text()
    # A writer killed before its rename leaves only the .partial; here for a key with no
    # entry, and beside an existing one, with contents that would otherwise be a valid hit.
    other = "o" * 32
    (folder / f"{other}.123-deadbeef.partial").write_text(complete)
    (folder / f"{KEY}.456-deadbeef.partial").write_text(complete.replace("run-1", "run-9"))
    assert asset_cache.lookup(RECIPE, ASSET, other) is None
    assert hit()["dagster_run_id"] == "run-1"
    # (c) storing again works and leaves no .partial of its own behind
    asset_cache.store(RECIPE, ASSET, other, {}, cached, "run-3")
    assert asset_cache.lookup(RECIPE, ASSET, other)["dagster_run_id"] == "run-3"
    assert sorted(p.name for p in folder.glob("*.partial")) == [
        f"{KEY}.456-deadbeef.partial",
        f"{other}.123-deadbeef.partial",
    ]


@pytest.mark.parametrize(
    "torn",
    [
        "",  # created, nothing written
        '{"value": {"adapter": "x"}, "files": [',  # cut off mid-write
        '{"value": {}, "files": ["/old/entry/without/hashes"], "dagster_run_id": "r"}',
        "[1, 2, 3]",
    ],
)
def test_a_torn_or_foreign_entry_is_a_miss_not_a_crash(cached, torn):
    entry = paths.asset_cache_dir() / RECIPE / ASSET / f"{KEY}.json"
    entry.write_text(torn)
    assert hit() is None
    asset_cache.store(RECIPE, ASSET, KEY, {"adapter": str(cached[0])}, cached, "run-4")
    assert hit()["dagster_run_id"] == "run-4"


def test_a_store_that_fails_midway_leaves_the_previous_entry_whole(cached, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched, pytest.raises(OSError, match="No space left"):
        patched.setattr(os, "fsync", full_disk)
        asset_cache.store(RECIPE, ASSET, KEY, {"adapter": "new"}, cached, "run-5")
    assert hit()["dagster_run_id"] == "run-1"  # the old entry, untouched
    folder = paths.asset_cache_dir() / RECIPE / ASSET
    assert not list(folder.glob("*.partial"))  # the failed write cleaned up after itself


def test_a_real_run_recomputes_a_cached_output_corrupted_since(
    tmp_path, monkeypatch, record_property
):
    """Through Dagster: the data stages run, the cleaned rows on disk are corrupted, and the
    next run cleans again instead of splitting the corrupt file; then it reuses again."""
    from pipelines.cli import DATA_ASSETS
    from pipelines.launch import run_recipe
    from pipelines.lib.dataset import read_jsonl
    from pipelines.recipe import load_recipe, recipe_path

    monkeypatch.setenv("RUNG_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "state" / ".dagster"))  # restored after
    recipe = load_recipe(recipe_path("tickets-labelled"))
    first = run_recipe(recipe, assets=DATA_ASSETS)
    assert first.success, first.failure
    cleaned = first.outputs["cleaned_data"]
    rows = read_jsonl(Path(cleaned.file))
    Path(cleaned.file).write_text("".join(json.dumps(r) + "\n" for r in rows[: len(rows) // 2]))

    second = run_recipe(recipe, assets=DATA_ASSETS)
    assert second.success, second.failure
    assert "cleaned_data" not in second.reused  # (a) the damaged output was not reused
    again = second.outputs["cleaned_data"]
    record_property("rows_lost", len(rows) - len(read_jsonl(Path(again.file))))
    assert again.sha256 == cleaned.sha256  # (b) the same rows as before the damage
    assert second.outputs["split"].train_sha256 == first.outputs["split"].train_sha256

    third = run_recipe(recipe, assets=DATA_ASSETS)  # (c) intact again: reused as usual
    assert {"cleaned_data", "split"} <= set(third.reused)
