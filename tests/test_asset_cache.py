"""Cache keys: which recipe change re-runs which asset; stored outputs and their files."""

from pathlib import Path

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


def keys(text: str, inputs: dict = INPUTS) -> dict[str, str]:
    spec = parse_recipe(text)
    return {asset: asset_cache.cache_key(asset, spec, inputs) for asset in asset_cache.RECIPE_PARTS}


def changed(edit: tuple[str, str]) -> set[str]:
    before, after = keys(RECIPE), keys(RECIPE.replace(*edit))
    return {asset for asset in before if before[asset] != after[asset]}


def test_changing_only_the_eval_section_changes_only_the_evaluation_key():
    assert changed(("  task: extraction", "  task: extraction\n  few_shot_k: 5")) == {"evaluation"}


def test_changing_training_changes_only_the_training_key():
    assert changed(("lora_r: 8", "lora_r: 4")) == {"training_run"}


def test_sequence_length_is_read_by_cleaning_training_and_evaluation():
    edit = ("lora_r: 8", "lora_r: 8\n  sequence_len: 512")
    assert changed(edit) == {"cleaned_data", "training_run", "evaluation"}


def test_the_data_seed_is_read_by_data_stages_and_evaluation_not_training():
    edit = ("completion: fields}", "completion: fields}\n  seed: 7")
    # training_set samples its rehearsal prompts with the data seed
    assert changed(edit) == {"cleaned_data", "split", "training_set", "evaluation"}


def test_rehearsal_changes_the_training_set_and_training_keys():
    rehearsal = "\n  rehearsal: {source: data/sentiment/movie_reviews.csv, field: text, rows: 9}"
    assert changed(("lora_r: 8", "lora_r: 8" + rehearsal)) == {"training_set", "training_run"}


def test_a_new_registered_name_changes_no_cache_key():
    assert changed(("eval:", "register:\n  name: other\neval:")) == set()


def test_an_input_content_hash_is_part_of_every_key():
    before, after = keys(RECIPE), keys(RECIPE, {"upstream": "abd"})
    assert all(before[a] != after[a] for a in before)


def test_code_versions_are_stable_and_distinct_per_asset():
    versions = {a: asset_cache.code_version(a) for a in asset_cache.CODE_FILES}
    asset_cache.code_version.cache_clear()  # read the files again, not the cached values
    assert versions == {a: asset_cache.code_version(a) for a in asset_cache.CODE_FILES}
    assert len(set(versions.values())) == len(versions)


def test_eval_budget_and_task_also_key_the_training_set():
    # on-policy DPO pairs are judged by the task's metric on answers of eval.max_new_tokens
    edit = ("  task: extraction", "  task: extraction\n  max_new_tokens: 64")
    assert changed(edit) == {"training_set", "evaluation"}


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
