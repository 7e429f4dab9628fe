"""Reproduce: naming the run, restoring its recipe and data, refusing clearly, comparing."""

import hashlib
import uuid

import pytest

from pipelines import paths
from pipelines.cli import main
from pipelines.lib import data_version, reproduction, tracking
from pipelines.lib.data_version import DataVersionNotFound
from pipelines.lib.reproduction import ReproduceError
from pipelines.recipe import recipe_path


def rung_run(
    recipe_id: str, data_md5: str, recipe_text: bytes | None = None, **extra_tags: str
) -> str:
    """An MLflow run as the pipeline leaves it: lineage tags and the recipe artifact."""
    text = recipe_text if recipe_text is not None else recipe_path("address-tiny").read_bytes()
    tags = {
        "rung.recipe_sha256": hashlib.sha256(text).hexdigest(),
        "rung.data_dvc_md5": data_md5,
        **extra_tags,
    }
    run_id = tracking.start_run(recipe_id, f"dagster-{uuid.uuid4().hex}", tags)
    folder = paths.state_dir() / "fixtures" / run_id
    folder.mkdir(parents=True)
    (folder / f"{recipe_id}.yaml").write_bytes(text)
    client = tracking.configure_mlflow()
    client.log_artifact(run_id, str(folder / f"{recipe_id}.yaml"), "recipe")
    tracking.finish_run(run_id)
    return run_id


def test_a_data_version_that_is_gone_is_refused_clearly(capsys):
    run_id = rung_run("repro-gone", "0" * 32)
    with pytest.raises(DataVersionNotFound, match=r"data version 0{32} is not in the DVC cache"):
        reproduction.prepare_workspace(reproduction.load_original(run_id))
    assert main(["reproduce", run_id]) == 2
    err = capsys.readouterr().err
    assert f"cannot reproduce {run_id}" in err and "0" * 32 in err and "dvc push" in err


def test_the_workspace_holds_the_recorded_recipe_and_data_version(tmp_path):
    md5 = data_version.recorded_md5()
    run_id = rung_run("repro-ok", md5)
    recipe_file = reproduction.prepare_workspace(
        reproduction.load_original(run_id), tmp_path / "ws"
    )
    assert recipe_file == tmp_path / "ws" / "recipes" / "repro-ok.yaml"
    assert recipe_file.read_bytes() == recipe_path("address-tiny").read_bytes()
    assert data_version.directory_md5(tmp_path / "ws" / "data") == md5
    assert data_version.workspace_matches_dvc()  # data/ untouched


def test_a_logged_recipe_that_does_not_match_its_hash_is_refused(tmp_path):
    run_id = rung_run("repro-tampered", data_version.recorded_md5())
    tracking.configure_mlflow().set_tag(run_id, "rung.recipe_sha256", "f" * 64)
    with pytest.raises(ReproduceError, match="does not hash to its tag"):
        reproduction.prepare_workspace(reproduction.load_original(run_id), tmp_path / "ws")


def test_targets_name_runs_by_id_recipe_file_or_registry_alias():
    older = rung_run("repro-target", data_version.recorded_md5())
    newer = rung_run("repro-target", data_version.recorded_md5(), b"data: {sources: [x]}\n")
    rung_run("repro-target", data_version.recorded_md5(), **{"rung.reproduces": older})
    assert reproduction.resolve_run(older) == older
    file = recipe_path("address-tiny").parent / "repro-target.yaml"
    assert reproduction.resolve_run(str(file)) == newer  # no run with this file's sha: the latest
    file.write_bytes(recipe_path("address-tiny").read_bytes())
    try:
        assert reproduction.resolve_run(str(file)) == older  # the run of this exact recipe
    finally:
        file.unlink()
    client = tracking.configure_mlflow()
    client.create_registered_model("repro-target")
    source = client.get_run(newer).info.artifact_uri + "/recipe"
    version = client.create_model_version("repro-target", source, run_id=newer)
    client.set_registered_model_alias("repro-target", "champion", version.version)
    assert reproduction.resolve_run("models:/repro-target@champion") == newer
    assert reproduction.resolve_run(f"models:/repro-target/{version.version}") == newer
    with pytest.raises(ReproduceError, match="not in the MLflow registry"):
        reproduction.resolve_run("models:/repro-target@nobody")
    with pytest.raises(ReproduceError, match="is not an MLflow run id"):
        reproduction.resolve_run("no-such-run")


def test_a_run_not_made_by_rung_is_refused():
    client = tracking.configure_mlflow()
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT).experiment_id
    run_id = client.create_run(experiment).info.run_id
    with pytest.raises(ReproduceError, match="not made by rung"):
        reproduction.load_original(run_id)


def test_the_comparison_flags_what_differs():
    md5 = data_version.recorded_md5()
    original = rung_run("repro-cmp", md5, **{"rung.train_sha256": "t1"})
    same = rung_run("repro-cmp", md5, **{"rung.train_sha256": "t1"})
    other = rung_run("repro-cmp", md5, **{"rung.train_sha256": "t2"})
    client = tracking.configure_mlflow()
    for run_id, f1 in ((original, 0.5), (same, 0.5004), (other, 0.6)):
        tracking.log_metrics(client, run_id, {"tuned.field_f1": f1, "train_runtime": f1 * 100})
    good = reproduction.compare_runs(original, same)
    assert good.reproduced
    runtime = next(m for m in good.metrics if m[0] == "train_runtime")
    assert runtime[3] is None  # timings are shown, not compared
    bad = reproduction.compare_runs(original, other)
    assert not bad.hashes_equal and not bad.metrics_within_tolerance
    text = reproduction.format_comparison(bad)
    assert "OUT OF TOLERANCE" in text and "DIFFERENT" in text and "NOT REPRODUCED" in text
