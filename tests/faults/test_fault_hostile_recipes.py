"""Hostile recipes: each is refused by `rung validate` (the real CLI entry point, in
process) with a message naming the file and the key, nothing runs, and a good recipe
validates right after."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines import cli, paths
from pipelines.lib.base_model import BaseModelError, resolve_base_model
from pipelines.recipe import RecipeError, load_recipe

GOOD = """\
data:
  sources: [data/rows.jsonl]
  fields: {prompt: address, completion: fields}
"""


@pytest.fixture
def data_root(tmp_path, monkeypatch) -> Path:
    """A data root of its own (RUNG_DATA_ROOT) with one good file, and a secret outside it."""
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    (root / "data" / "rows.jsonl").write_text('{"address": "1 Main St", "fields": {}}\n')
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "id_rsa.jsonl").write_text('{"address": "PRIVATE KEY", "fields": {}}\n')
    monkeypatch.setenv("RUNG_DATA_ROOT", str(root))
    return root


def validate(tmp_path: Path, text: str, capsys, name: str = "hostile.yaml") -> tuple[int, str]:
    """`rung validate` on a recipe file: (exit code, what it printed)."""
    recipe = tmp_path / "recipes" / name
    recipe.parent.mkdir(exist_ok=True)
    recipe.write_text(text)
    code = cli.main(["validate", str(recipe)])
    out = capsys.readouterr()
    return code, out.out + out.err


def assert_refused_then_good_passes(tmp_path, capsys, text: str, *expected: str) -> str:
    code, message = validate(tmp_path, text, capsys)
    assert code == 1, message
    assert "hostile.yaml" in message  # names the file
    for part in expected:
        assert part in message, message
    # (c) the next normal operation succeeds: a good recipe validates
    code, ok = validate(tmp_path, GOOD, capsys, name="good.yaml")
    assert code == 0 and "good.yaml: ok" in ok, ok
    return message


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system ['touch {marker}']",
        "!!python/object/new:os.system ['touch {marker}']",
        "!!python/name:os.system",
        "!!python/module:os",
        "!custom {marker}",
    ],
)
def test_yaml_tags_are_refused_naming_the_key_and_never_run(tmp_path, capsys, data_root, tag):
    marker = tmp_path / "executed"
    text = GOOD + "model:\n  base_model: " + tag.format(marker=marker) + "\n"
    message = assert_refused_then_good_passes(tmp_path, capsys, text, "model.base_model", "tag")
    assert "not allowed" in message
    assert not marker.exists()  # nothing was constructed, let alone executed


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path, capsys, data_root):
    lines = ["b0: &b0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 10)}]" for i in range(1, 9)]
    text = GOOD + "\n".join(lines) + "\n"  # 10^9 strings once expanded
    assert_refused_then_good_passes(tmp_path, capsys, text, "expands to more than")


def test_a_huge_recipe_file_is_refused_unread(tmp_path, capsys, data_root):
    text = GOOD + "  system_prompt: " + "x" * 2_000_000 + "\n"
    assert_refused_then_good_passes(tmp_path, capsys, text, "larger than")


@pytest.mark.parametrize(
    "key, value",
    [
        ("data.sources", "[../outside/id_rsa.jsonl]"),
        ("data.sources", "[data/../../outside/id_rsa.jsonl]"),
        ("data.sources", "['{outside}/id_rsa.jsonl']"),
        ("data.sources", "[/etc/passwd]"),
        ("train.rehearsal.source", "../outside/id_rsa.jsonl"),
        ("eval.retrieval.corpus", "[../outside/id_rsa.jsonl]"),
    ],
)
def test_data_files_outside_the_data_root_are_refused(tmp_path, capsys, data_root, key, value):
    value = value.format(outside=tmp_path / "outside")
    if key == "data.sources":
        text = GOOD.replace("[data/rows.jsonl]", value)
    elif key == "train.rehearsal.source":
        text = GOOD + f"train:\n  rehearsal: {{source: {value}, field: address, rows: 1}}\n"
    else:
        text = GOOD + f"eval:\n  task: short_answer\n  retrieval: {{corpus: {value}}}\n"
    assert_refused_then_good_passes(tmp_path, capsys, text, f"{key}:", "data root")


def test_a_symlink_in_the_data_folder_leading_outside_is_refused(tmp_path, capsys, data_root):
    os.symlink(tmp_path / "outside" / "id_rsa.jsonl", data_root / "data" / "innocent.jsonl")
    text = GOOD.replace("rows.jsonl", "innocent.jsonl")
    message = assert_refused_then_good_passes(
        tmp_path, capsys, text, "data.sources:", "outside the data root", "symlink"
    )
    assert str(tmp_path / "outside" / "id_rsa.jsonl") in message  # where it really leads
    # a symlink that stays inside the data root is fine (e.g. DVC's symlink cache type)
    os.symlink(data_root / "data" / "rows.jsonl", data_root / "data" / "alias.jsonl")
    recipe = tmp_path / "recipes" / "inside.yaml"
    recipe.write_text(GOOD.replace("rows.jsonl", "alias.jsonl"))
    assert load_recipe(recipe).spec.data.sources == ["data/alias.jsonl"]


@pytest.mark.parametrize(
    "section, key",
    [
        ("model", "trust_remote_code"),
        ("train", "trust_remote_code"),
        ("model", "code_revision"),
        ("train", "axolotl_overrides"),
    ],
)
def test_keys_that_would_run_model_code_are_unknown_keys(tmp_path, capsys, data_root, section, key):
    text = GOOD + f"{section}:\n  {key}: true\n"
    assert_refused_then_good_passes(tmp_path, capsys, text, f"{section}.{key}: unknown key")


@pytest.mark.parametrize(
    "key, value, limit",
    [
        ("data.max_rows", 10**12, "less than or equal to"),
        ("data.skip_rows", -1, "greater than or equal to 0"),
        ("data.seed", -5, "greater than or equal to 0"),
        ("train.sequence_len", 10**9, "less than or equal to"),
        ("train.sequence_len", 0, "greater than or equal to 32"),
        ("train.lora_r", 0, "greater than 0"),
        ("train.lora_r", 100_000, "less than or equal to 512"),
        ("train.num_epochs", 0, "greater than 0"),
        ("train.num_epochs", -3, "greater than 0"),
        ("train.num_epochs", 10**6, "less than or equal to"),
        ("train.max_steps", 10**12, "less than or equal to"),
        ("train.micro_batch_size", 10**7, "less than or equal to"),
        ("train.gradient_accumulation_steps", 0, "greater than 0"),
        ("train.learning_rate", 5, "less than 1"),
        ("eval.max_new_tokens", 10**8, "less than or equal to"),
        ("eval.batch_size", 0, "greater than 0"),
        ("eval.bootstrap_resamples", 10**9, "less than or equal to"),
    ],
)
def test_absurd_sizes_are_refused_saying_the_limit(tmp_path, capsys, data_root, key, value, limit):
    section, name = key.split(".")
    if section == "data":
        text = GOOD + f"  {name}: {value}\n"
    else:
        text = GOOD + f"{section}:\n  {name}: {value}\n"
    assert_refused_then_good_passes(tmp_path, capsys, text, f"{key}:", limit)


def test_every_shipped_recipe_and_fixture_stays_valid(capsys):
    files = sorted((paths.REPO_ROOT / "recipes").glob("*.yaml"))
    files += sorted((paths.REPO_ROOT / "tests" / "fixtures" / "recipes").glob("*.yaml"))
    assert cli.main(["validate", *map(str, files)]) == 0, capsys.readouterr().err


def model_folder(tmp_path: Path, *weights: str) -> Path:
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    for name in weights:
        (folder / name).write_bytes(b"\x80\x04 a pickle would run code here")
    return folder


@pytest.mark.parametrize("weights", [("pytorch_model.bin",), ("model.pt", "optimizer.pth")])
def test_a_base_model_with_only_pickle_weights_is_refused(tmp_path, weights):
    folder = model_folder(tmp_path, *weights)
    with pytest.raises(BaseModelError) as refused:
        resolve_base_model(str(folder))
    message = str(refused.value)
    assert "model.base_model" in message and "safetensors only" in message
    assert all(name in message for name in weights)
    # (c) converted to safetensors, the same folder resolves (the pickles are never hashed)
    (folder / "model.safetensors").write_bytes(b"safe weights")
    model = resolve_base_model(str(folder))
    assert list(model.weights) == ["model.safetensors"]


def test_a_base_model_that_ships_its_own_code_is_refused(tmp_path):
    folder = model_folder(tmp_path)
    (folder / "model.safetensors").write_bytes(b"safe weights")
    (folder / "config.json").write_text('{"auto_map": {"AutoModel": "modeling_evil.Model"}}')
    with pytest.raises(BaseModelError, match=r"config.json declares its own Python code"):
        resolve_base_model(str(folder))
    (folder / "config.json").write_text('{"model_type": "llama"}')
    assert resolve_base_model(str(folder)).path == folder.resolve()


def test_a_recipe_naming_a_pickle_only_model_validates_but_its_run_cannot_load_it(tmp_path):
    """Validation reads no model (it is fast and offline); the base_model stage refuses."""
    from pipelines.lib.data_stages import load_base_model

    folder = model_folder(tmp_path, "pytorch_model.bin")
    recipe = tmp_path / "pickled.yaml"
    text = "data:\n  sources: [data/address/addresses.jsonl]\n"
    recipe.write_text(text + f"model:\n  base_model: {folder}\n")
    with pytest.raises(BaseModelError, match="pytorch_model.bin"):
        load_base_model(load_recipe(recipe))


def test_parse_errors_name_the_key_not_a_traceback():
    from pipelines.recipe import parse_recipe

    with pytest.raises(RecipeError) as refused:
        parse_recipe(GOOD + "train:\n  seed: !!python/object/apply:os.getpid []\n", "r.yaml")
    assert str(refused.value).startswith("r.yaml: not valid YAML for a recipe: train.seed: tag")
