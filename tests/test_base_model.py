import hashlib

import pytest

from pipelines.lib.base_model import (
    BaseModelError,
    embedded_model_dir,
    resolve_adapter,
    resolve_base_model,
    weight_digests,
    weights_sha256,
)


def test_single_file_weights_hash_is_the_files_sha256(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    assert weights_sha256(weight_digests(tmp_path)) == hashlib.sha256(b"weights").hexdigest()


def test_sharded_weights_hash_changes_with_any_shard(tmp_path):
    (tmp_path / "a.safetensors").write_bytes(b"1")
    (tmp_path / "b.safetensors").write_bytes(b"2")
    before = weights_sha256(weight_digests(tmp_path))
    (tmp_path / "b.safetensors").write_bytes(b"3")
    assert weights_sha256(weight_digests(tmp_path)) != before


def test_the_embedded_model_resolves_offline():
    model = resolve_base_model("smollm2-135m-instruct")
    assert model.path == embedded_model_dir() and len(model.sha256) == 64


def test_unknown_models_and_adapters_are_refused_with_what_to_do(tmp_path):
    with pytest.raises(BaseModelError, match="unknown base model 'acme/nope'.*never downloads"):
        resolve_base_model("acme/nope")
    with pytest.raises(BaseModelError, match="no weight files"):
        (tmp_path / "config.json").write_text("{}")
        resolve_base_model(str(tmp_path))
    with pytest.raises(BaseModelError, match="neither a LoRA adapter folder"):
        resolve_adapter(str(tmp_path))


def test_a_hub_id_resolves_to_the_cached_main_revision(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--acme--tiny"
    main, other = "a" * 40, "b" * 40
    for commit, weights in ((main, b"main weights"), (other, b"a newer, other revision")):
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "snapshots" / commit / "config.json").write_text("{}")
        (repo / "snapshots" / commit / "model.safetensors").write_bytes(weights)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(main)
    model = resolve_base_model("acme/tiny")
    assert model.path == repo / "snapshots" / main  # what refs/main names, not the newest folder
    assert model.sha256 == hashlib.sha256(b"main weights").hexdigest()
    with pytest.raises(BaseModelError, match="unknown base model 'acme/other'"):
        resolve_base_model("acme/other")
