from pathlib import Path

import pytest

from pipelines import paths
from pipelines.recipe import RecipeError, load_recipe, parse_recipe

MINIMAL = """
data:
  sources: [data/address/addresses.jsonl]
  fields: {prompt: address, completion: fields}
"""


def write(tmp_path: Path, text: str, name: str = "my-recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_committed_recipes_are_valid():
    recipes = sorted((paths.REPO_ROOT / "recipes").glob("*.yaml"))
    assert recipes, "the repository ships at least the default recipe"
    for path in recipes:
        assert load_recipe(path).id == path.stem


def test_defaults_fill_what_the_recipe_leaves_out(tmp_path):
    recipe = load_recipe(write(tmp_path, MINIMAL))
    assert recipe.id == "my-recipe"
    assert recipe.spec.train.adapter == "lora"
    assert recipe.spec.data.heldout_fraction == 0.15
    assert recipe.registered_name == "my-recipe"
    assert len(recipe.sha256) == 64


def test_misspelled_key_is_named_with_a_suggestion(tmp_path):
    path = write(tmp_path, MINIMAL + "train:\n  lora_rr: 8\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    message = str(err.value)
    assert str(path) in message
    assert "train.lora_rr: unknown key (did you mean 'lora_r'?)" in message


def test_unknown_section_is_refused():
    with pytest.raises(RecipeError, match="registr: unknown key .did you mean 'register'"):
        parse_recipe(MINIMAL + "registr:\n  name: x\n")


def test_wrong_type_names_the_key_and_value():
    with pytest.raises(RecipeError, match=r"train.micro_batch_size: .*integer.*'four'"):
        parse_recipe(MINIMAL + "train:\n  micro_batch_size: four\n")


def test_out_of_range_value_says_the_limit():
    with pytest.raises(RecipeError, match=r"data.heldout_fraction: .*less than or equal to 0.5"):
        parse_recipe(MINIMAL.replace("fields:", "heldout_fraction: 0.9\n  fields:"))


def test_missing_required_section():
    with pytest.raises(RecipeError, match="data: required key is missing"):
        parse_recipe("train:\n  lora_r: 8\n")


def test_missing_data_file_is_named(tmp_path):
    path = write(tmp_path, MINIMAL.replace("addresses.jsonl", "nope.jsonl"))
    with pytest.raises(
        RecipeError, match=r"data.sources: file 'data/address/nope.jsonl' not found"
    ):
        load_recipe(path)


def test_duplicate_keys_are_refused_not_overwritten():
    with pytest.raises(RecipeError, match="duplicate key 'train'"):
        parse_recipe(MINIMAL + "train: {lora_r: 8}\ntrain: {lora_r: 16}\n")


def test_unsafe_yaml_tags_are_refused():
    with pytest.raises(RecipeError, match="not valid YAML"):
        parse_recipe(MINIMAL + "model: !!python/object/apply:os.system ['true']\n")


def test_recipe_id_must_be_a_clean_file_stem(tmp_path):
    with pytest.raises(RecipeError, match="file name is the recipe id"):
        load_recipe(write(tmp_path, MINIMAL, name="My Recipe.yaml"))


def test_prompt_template_must_use_the_prompt():
    with pytest.raises(RecipeError, match="must contain '\\{prompt\\}'"):
        parse_recipe(MINIMAL.replace("fields:", "prompt_template: hello\n  fields:"))


def test_section_hash_changes_only_with_its_section(tmp_path):
    base = load_recipe(write(tmp_path, MINIMAL, "a.yaml"))
    changed_eval = load_recipe(write(tmp_path, MINIMAL + "eval:\n  max_new_tokens: 10\n", "b.yaml"))
    assert base.section_hash("data", "train") == changed_eval.section_hash("data", "train")
    assert base.section_hash("eval") != changed_eval.section_hash("eval")


def test_data_fields_must_fit_the_format():
    with pytest.raises(
        RecipeError,
        match=r"data.fields.prompt is not read by data.format "
        r"'messages' \(it reads: messages\)",
    ):
        parse_recipe("data:\n  sources: [a.jsonl]\n  format: messages\n  fields: {prompt: q}\n")
    with pytest.raises(RecipeError, match=r"data.format: .*'sharegpt'"):
        parse_recipe("data:\n  sources: [a.jsonl]\n  format: chatml\n")
    with pytest.raises(RecipeError, match=r"data.fields.promt: unknown key .did you mean 'prompt'"):
        parse_recipe("data:\n  sources: [a.jsonl]\n  fields: {promt: q}\n")


def test_data_cross_field_rules_say_what_to_change():
    with pytest.raises(RecipeError, match="rebalance needs labels: set data.label_field"):
        parse_recipe(MINIMAL + "  balance: {rebalance: cap}\n")
    with pytest.raises(RecipeError, match="warn_majority_share must not exceed"):
        parse_recipe(MINIMAL + "  balance: {warn_majority_share: 0.9, max_majority_share: 0.8}\n")
    with pytest.raises(RecipeError, match="preference.*train.method: dpo"):
        parse_recipe("data:\n  sources: [a.jsonl]\n  format: preference\n")
    with pytest.raises(RecipeError, match=r"data.dedupe.threshold: .*less than 1"):
        parse_recipe(MINIMAL + "  dedupe: {threshold: 1.5}\n")


def test_data_defaults():
    data = parse_recipe(MINIMAL).data
    assert (data.max_bad_fraction, data.heldout_fraction) == (0.05, 0.15)
    assert (data.dedupe.near, data.dedupe.num_perm, data.dedupe.threshold) == (True, 128, 0.8)
    assert data.raw_fields == {"prompt": "address", "completion": "fields"}


def test_training_method_rules_say_what_to_change():
    with pytest.raises(RecipeError, match="train.distill .the teacher. is required"):
        parse_recipe(MINIMAL + "train:\n  method: distill\n")
    with pytest.raises(RecipeError, match="sample_packing must be false for method: dpo"):
        parse_recipe(MINIMAL + "train:\n  method: dpo\n  sample_packing: true\n")
    with pytest.raises(RecipeError, match="pairs: data needs data.format: preference"):
        parse_recipe(MINIMAL + "train:\n  method: dpo\n  dpo: {pairs: data}\n")
    dpo = parse_recipe(MINIMAL + "train:\n  method: dpo\n  dpo: {beta: 0.2}\n").train
    assert (dpo.dpo.beta, dpo.dpo.pairs) == (0.2, "on_policy")


REHEARSAL = "  rehearsal: {source: data/sentiment/movie_reviews.csv, field: text, rows: 40}\n"


def test_rehearsal_is_for_imitation_methods_and_its_file_must_exist(tmp_path):
    sft = parse_recipe(MINIMAL + "train:\n" + REHEARSAL).train.rehearsal
    assert (sft.field, sft.rows, sft.max_new_tokens) == ("text", 40, 96)
    with pytest.raises(RecipeError, match="train.rehearsal adds answers to imitate"):
        parse_recipe(MINIMAL + "train:\n  method: dpo\n" + REHEARSAL)
    with pytest.raises(RecipeError, match="train.rehearsal.rows: .*greater than 0"):
        parse_recipe(MINIMAL + "train:\n" + REHEARSAL.replace("rows: 40", "rows: 0"))
    missing = write(tmp_path, MINIMAL + "train:\n" + REHEARSAL.replace("movie_reviews", "nope"))
    with pytest.raises(
        RecipeError, match=r"train.rehearsal.source: file 'data/sentiment/nope.csv' not found"
    ):
        load_recipe(missing)
