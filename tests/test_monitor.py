"""`rung monitor` and the `traffic_drift` asset: a registered version's reference profile
against its logged traffic, the verdict logged to MLflow (no model is loaded).

Each test has its own state dir (MLflow store, traffic log), so the stand-in versions
registered here never meet the other tests' registry.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from pipelines import cli, paths
from pipelines.lib import registry, tracking
from pipelines.lib.drift import MONITOR_EXPERIMENT, PROFILE_ARTIFACT, write_reference_profile
from pipelines.lib.traffic import TrafficLog, traffic_record


@pytest.fixture(autouse=True)
def own_state(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNG_STATE_DIR", str(tmp_path / "state"))
    yield
    monkeypatch.undo()
    tracking.configure_mlflow()  # back to the session's store


def _addresses() -> list[dict]:
    rows = [json.loads(line) for line in paths.ADDRESS_CORPUS.read_text().splitlines()]
    random.Random(0).shuffle(rows)
    return rows


def _predictions(tmp_path: Path) -> Path:
    rows = _addresses()[:150]
    frame = pd.DataFrame(
        {
            "candidate": "tuned",
            "set": "heldout",
            "id": r["id"],
            "prompt": r["address"],
            "reference": json.dumps(r["fields"]),
            "output": json.dumps(r["fields"]),
        }
        for r in rows
    )
    file = tmp_path / "predictions.parquet"
    frame.to_parquet(file, index=False)
    return file


def _register(tmp_path: Path, name: str, with_profile: bool = True) -> None:
    """A registered version with a stand-in adapter and (or without) a reference profile."""
    predictions = _predictions(tmp_path)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"lora")
    (adapter / "adapter_config.json").write_text("{}")
    run_id = tracking.start_run(name, "dagster-1", {"rung.recipe_id": name})
    client = tracking.configure_mlflow()
    client.log_param(run_id, "recipe.eval.task", "extraction")
    client.log_artifact(run_id, str(predictions), "evaluation")
    attachments = {}
    if with_profile:
        profile = write_reference_profile(predictions, "extraction", None, tmp_path / "profile")
        attachments[PROFILE_ARTIFACT] = [profile]
    registry.register_adapter(
        name=name,
        run_id=run_id,
        adapter_dir=adapter,
        base_model={"id": "stand-in", "path": str(tmp_path), "sha256": "b" * 64, "weights": {}},
        report={
            "primary_metric": "field_f1",
            "candidates": {"tuned": {"field_f1": 0.5}},
            "verdict": {"ship": True, "label": "SHIP", "reasons": []},
            "interval": {
                "versus": "few_shot",
                "mean": 0.1,
                "low": 0.05,
                "high": 0.2,
                "confidence": 0.95,
            },
        },
        evaluated_champion=None,
        attachments=attachments,
        dagster_run_id="dagster-1",
    )


def _log(
    folder: Path, name: str, inputs: list[str], outputs: list[str], version="1", shadow_of=None
) -> None:
    log = TrafficLog(folder)
    for i, (text, output) in enumerate(zip(inputs, outputs)):
        log.append(
            traffic_record(
                model=name,
                version=version,
                messages=[{"role": "user", "content": text}],
                output=output,
                latency_s=1.0,
                prompt_tokens=20,
                new_tokens=30,
                finish_reason="stop",
                request_id=f"r{i}",
                shadow_of=shadow_of,
            )
        )


def _in_distribution(n: int = 80) -> tuple[list[str], list[str]]:
    rows = _addresses()[300 : 300 + n]
    return [r["address"] for r in rows], [json.dumps(r["fields"]) for r in rows]


def _reviews(n: int = 80) -> tuple[list[str], list[str]]:
    with paths.SENTIMENT_CORPUS.open(newline="", encoding="utf-8") as handle:
        reviews = [row["text"] for row in csv.DictReader(handle)][:n]
    _, outputs = _in_distribution(n)  # the model kept answering in its format
    return reviews, outputs


def _monitor_runs(name: str) -> list:
    client = tracking.configure_mlflow()
    experiment = client.get_experiment_by_name(MONITOR_EXPERIMENT)
    return client.search_runs(
        [experiment.experiment_id],
        f"tags.`rung.monitored_model` = '{name}'",
        order_by=["attributes.start_time ASC"],
    )


def test_rung_monitor_passes_in_distribution_traffic_and_fails_shifted_traffic(tmp_path, capsys):
    _register(tmp_path, "watched")
    quiet, shifted = tmp_path / "quiet", tmp_path / "shifted"
    _log(quiet, "watched", *_in_distribution())
    _log(quiet, "watched", *_reviews(), version="2")  # another version's traffic: not read
    _log(shifted, "watched", *_reviews())

    assert cli.main(["monitor", "models:/watched@champion", "--traffic-dir", str(quiet)]) == 0
    out = capsys.readouterr().out
    assert "80 requests vs 150 reference rows" in out and "status: OK" in out
    assert cli.main(["monitor", "watched", "--traffic-dir", str(shifted)]) == 1
    out = capsys.readouterr().out
    assert "status: DRIFT" in out and "input_domain_auc" in out

    ok, drift = _monitor_runs("watched")
    assert ok.data.tags["rung.monitored_version"] == "1"
    assert ok.data.tags["rung.model_uri"] == "models:/watched/1"
    assert (ok.data.tags["rung.drift_alert"], drift.data.tags["rung.drift_alert"]) == (
        "false",
        "true",
    )
    assert "input_domain_auc" in drift.data.tags["rung.drift_alerts"]
    assert drift.data.metrics["traffic_rows"] == 80
    assert drift.data.metrics["input_domain_auc.statistic"] > 0.7


def test_rung_monitor_compares_a_shadowing_challenger_on_the_same_requests(tmp_path, capsys):
    _register(tmp_path, "watched")
    traffic = tmp_path / "traffic"
    inputs, outputs = _in_distribution()
    _log(traffic, "watched", inputs, outputs)
    # the challenger answered copies of the first 60 requests; 15 of its answers are not JSON
    answers = ["no JSON here"] * 15 + outputs[15:60]
    _log(traffic, "challenger", inputs[:60], answers, version=None, shadow_of="watched")
    _log(traffic, "other", inputs, outputs, version=None, shadow_of="someone-else")

    assert cli.main(["monitor", "watched", "--traffic-dir", str(traffic)]) == 0
    out = capsys.readouterr().out
    assert "status: OK" in out  # the copies are not the watched version's traffic
    assert "shadow: challenger answered copies of 60 of these requests" in out
    assert "same answer as watched in 75.0%" in out and "'no JSON here'" in out
    assert "latency" not in out  # a copy's latency leaves out its wait: not comparable
    (run,) = _monitor_runs("watched")
    assert run.data.tags["rung.shadow_model"] == "challenger"
    metrics = run.data.metrics
    assert metrics["shadow.pairs"] == 60 and metrics["shadow.agreement"] == 0.75
    assert (metrics["shadow.live.valid_rate"], metrics["shadow.challenger.valid_rate"]) == (
        1.0,
        0.75,
    )


def test_rung_monitor_says_when_there_is_too_little_traffic_or_no_model(tmp_path, capsys):
    _register(tmp_path, "quiet-model")
    inputs, outputs = _in_distribution(10)
    _log(tmp_path / "traffic", "quiet-model", inputs, outputs)
    argv = ["monitor", "models:/quiet-model/1", "--traffic-dir", str(tmp_path / "traffic")]
    assert cli.main([*argv, "--no-mlflow"]) == 0
    assert "insufficient traffic" in capsys.readouterr().out
    assert cli.main([*argv, "--no-mlflow", "--min-rows", "5"]) in (0, 1)  # now it judges
    assert "status:" in capsys.readouterr().out
    assert cli.main(["monitor", "models:/nobody@champion", "--no-mlflow"]) == 2
    assert "not in the MLflow registry" in capsys.readouterr().err


def test_a_version_registered_without_a_profile_is_profiled_from_its_run(tmp_path, capsys):
    _register(tmp_path, "older", with_profile=False)
    _log(paths.traffic_dir(), "older", *_reviews())  # the default traffic dir
    assert cli.main(["monitor", "older", "--no-mlflow"]) == 1
    assert "status: DRIFT" in capsys.readouterr().out


def test_the_traffic_drift_asset_fails_its_check_on_drift(tmp_path):
    from pipelines.defs.monitoring import traffic_drift

    name = "leaky-near-duplicates"  # a recipe partition (its own registry in this state dir)
    _register(tmp_path, name)
    _log(paths.traffic_dir(), name, *_reviews())
    result = dg.materialize([traffic_drift], partition_key=name, raise_on_error=False)
    assert result.success  # the asset materialized; its check tells the verdict
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "no_drift" and not check.passed
    assert check.description.startswith("DRIFT: ")
    (materialization,) = result.asset_materializations_for_node("traffic_drift")
    assert materialization.metadata["status"].value == "drift"
    assert materialization.metadata["model_version"].value == f"models:/{name}/1"
    assert _monitor_runs(name)[0].data.tags["rung.dagster_run_id"] == result.run_id


def test_the_sensor_asks_for_a_check_once_enough_new_traffic_is_logged():
    from pipelines.definitions import defs
    from pipelines.defs.monitoring import NEW_REQUESTS, new_traffic

    name = "leaky-near-duplicates"  # a recipe partition; its registered name is the same
    inputs, outputs = _in_distribution(2 * NEW_REQUESTS)
    _log(paths.traffic_dir(), name, inputs[: NEW_REQUESTS - 1], outputs[: NEW_REQUESTS - 1])
    with dg.instance_for_test() as instance:

        def tick(cursor):
            return new_traffic.evaluate_tick(
                dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
            )

        quiet = tick(None)
        assert quiet.run_requests == []  # 49 requests: not yet worth a check
        _log(paths.traffic_dir(), name, inputs[NEW_REQUESTS:], outputs[NEW_REQUESTS:])
        first = tick(quiet.cursor)
        (request,) = first.run_requests
        assert request.partition_key == name
        assert request.run_key.startswith(f"{name}:{2 * NEW_REQUESTS - 1}:")
        assert tick(first.cursor).run_requests == []  # nothing new since that check
