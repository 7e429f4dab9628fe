"""Cache keys: which recipe change re-runs which asset; stored outputs and their files."""

from pathlib import Path

import pytest

from pipelines.lib import asset_cache
from pipelines.recipe import parse_recipe

RECIPE = """
data:
  sources: [data/address/addresses.jsonl]
  fields: {prompt: address, completion: fields}
train:
  lora_r: 8
eval:
  task: extraction
"""
INPUTS = {"upstream": "abc"}
CODE = "c0de"


def keys(text: str, inputs: dict = INPUTS, code: str = CODE) -> dict[str, str]:
    spec = parse_recipe(text)
    return {
        asset: asset_cache.cache_key(asset, code, spec, inputs)
        for asset in asset_cache.RECIPE_PARTS
    }


def changed(edit: tuple[str, str]) -> set[str]:
    before, after = keys(RECIPE), keys(RECIPE.replace(*edit))
    return {asset for asset in before if before[asset] != after[asset]}


def test_changing_only_the_eval_section_changes_only_the_evaluation_keys():
    edit = ("  task: extraction", "  task: extraction\n  few_shot_k: 5")
    assert changed(edit) == {"cheap_rungs", "evaluation"}


def test_the_gate_judges_the_tune_only_so_the_cheap_rungs_are_not_asked_again():
    edit = ("  task: extraction", "  task: extraction\n  gate: {min_margin: 0.1}")
    assert changed(edit) == {"evaluation"}


def test_a_target_can_stop_the_climb_so_it_keys_the_cheap_rungs():
    edit = ("  task: extraction", "  task: extraction\n  target: 0.9")
    assert changed(edit) == {"cheap_rungs", "evaluation"}


def test_changing_training_changes_only_the_training_key():
    assert changed(("lora_r: 8", "lora_r: 4")) == {"training_run"}


def test_sequence_length_is_read_by_cleaning_training_and_evaluation():
    edit = ("lora_r: 8", "lora_r: 8\n  sequence_len: 512")
    assert changed(edit) == {"cleaned_data", "training_run", "evaluation"}


def test_the_data_seed_is_read_by_data_stages_and_evaluation_not_training():
    edit = ("completion: fields}", "completion: fields}\n  seed: 7")
    # training_set samples its rehearsal prompts with the data seed
    assert changed(edit) == {"cleaned_data", "split", "cheap_rungs", "training_set", "evaluation"}


def test_rehearsal_changes_the_training_set_and_training_keys():
    rehearsal = "\n  rehearsal: {source: data/sentiment/movie_reviews.csv, field: text, rows: 9}"
    assert changed(("lora_r: 8", "lora_r: 8" + rehearsal)) == {"training_set", "training_run"}


def test_how_often_training_saves_checkpoints_changes_no_cache_key():
    # how a training runs, not what it produces: a killed run stays resumable after it
    assert changed(("lora_r: 8", "lora_r: 8\n  checkpoint_steps: 7")) == set()


def test_a_new_registered_name_changes_no_cache_key():
    assert changed(("eval:", "register:\n  name: other\neval:")) == set()


def test_an_input_content_hash_is_part_of_every_key():
    before, after = keys(RECIPE), keys(RECIPE, {"upstream": "abd"})
    assert all(before[a] != after[a] for a in before)


def test_the_code_version_is_part_of_every_key():
    before, after = keys(RECIPE), keys(RECIPE, code="c0de2")
    assert all(before[a] != after[a] for a in before)


def fake_package(root: Path) -> None:
    """pipelines.a imports b at top level and c inside a function; d is unrelated."""
    package = root / "pipelines"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text(
        "import json\nfrom pipelines import b\n\n\ndef run():\n    import pipelines.c\n"
    )
    for name in "bcd":
        (package / f"{name}.py").write_text(f"{name.upper()} = 1\n")


@pytest.mark.parametrize("edited, changes", [("b", True), ("c", True), ("d", False)])
def test_the_code_version_follows_the_imports_and_nothing_else(tmp_path, edited, changes):
    fake_package(tmp_path)
    before = asset_cache.code_version("pipelines.a", root=tmp_path)
    assert asset_cache.code_closure("pipelines.a", root=tmp_path) == [
        "pipelines",
        "pipelines.a",
        "pipelines.b",
        "pipelines.c",
    ]
    (tmp_path / "pipelines" / f"{edited}.py").write_text("edited = 2\n")
    asset_cache.code_version.cache_clear()  # read the files again, not the cached value
    after = asset_cache.code_version("pipelines.a", root=tmp_path)
    assert (before != after) == changes


def test_relative_and_type_checking_imports_count(tmp_path):
    fake_package(tmp_path)
    (tmp_path / "pipelines" / "sub").mkdir()
    (tmp_path / "pipelines" / "sub" / "__init__.py").write_text("")
    (tmp_path / "pipelines" / "sub" / "e.py").write_text(
        "from typing import TYPE_CHECKING\nfrom .. import b\n"
        "if TYPE_CHECKING:\n    from ..c import C\n"
    )
    assert asset_cache.code_closure("pipelines.sub.e", root=tmp_path) == [
        "pipelines",
        "pipelines.b",
        "pipelines.c",
        "pipelines.sub",
        "pipelines.sub.e",
    ]


def test_a_worker_import_inside_a_function_is_in_the_closure():
    closure = asset_cache.code_closure("pipelines.worker.evaluate")
    assert "pipelines.worker.generation" in closure


def test_a_module_that_is_not_on_disk_raises_naming_it(tmp_path):
    fake_package(tmp_path)
    (tmp_path / "pipelines" / "b.py").write_text("import pipelines.gone\n")
    with pytest.raises(ModuleNotFoundError, match="pipelines.gone"):
        asset_cache.code_version("pipelines.a", root=tmp_path)
    with pytest.raises(ModuleNotFoundError, match="pipelines.missing"):
        asset_cache.code_closure("pipelines.missing", root=tmp_path)


def test_eval_budget_and_task_also_key_the_training_set():
    # on-policy DPO pairs are judged by the task's metric on answers of eval.max_new_tokens
    edit = ("  task: extraction", "  task: extraction\n  max_new_tokens: 64")
    assert changed(edit) == {"cheap_rungs", "training_set", "evaluation"}


def test_a_stored_output_is_reused_until_one_of_its_files_is_gone(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNG_STATE_DIR", str(tmp_path))
    output = tmp_path / "cleaned.jsonl"
    output.write_text("{}\n")
    value = {"file": str(output), "sha256": "f00"}
    assert asset_cache.lookup("r", "cleaned_data", "k1") is None
    asset_cache.store("r", "cleaned_data", "k1", value, [output], "dagster-run-1")
    hit = asset_cache.lookup("r", "cleaned_data", "k1")
    assert hit["value"] == value and hit["dagster_run_id"] == "dagster-run-1"
    assert asset_cache.lookup("r", "cleaned_data", "k2") is None  # another key
    assert asset_cache.lookup("other-recipe", "cleaned_data", "k1") is None
    Path(output).unlink()
    assert asset_cache.lookup("r", "cleaned_data", "k1") is None
