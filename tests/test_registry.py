"""The MLflow registry (real, in the test state dir): versions, idempotency, aliases.

Adapters here are stand-in files: registration copies them and never loads them
(loading and predicting a real one is in tests/test_registry_end_to_end.py).
"""

import hashlib
import json
from pathlib import Path

import pytest

from pipelines.lib import aliases, registry, tracking
from pipelines.lib.aliases import decide_promotion
from pipelines.lib.base_model import weight_digests

BASE = {"id": "tiny-base", "path": "(set per test)", "sha256": "b" * 64, "weights": {}}
WEIGHTS = b"base weights"


def base_model(tmp_path: Path) -> dict:
    folder = tmp_path / "tiny-base"
    folder.mkdir(exist_ok=True)
    (folder / "model.safetensors").write_bytes(WEIGHTS)
    # as the base_model asset gives it: each weight file's sha256
    return {**BASE, "path": str(folder), "weights": weight_digests(folder)}


LINEAGE = {
    "rung.data_dvc_md5": "d" * 32,
    "rung.recipe_sha256": "r" * 64,
    "rung.git_commit": "c" * 40,
    "rung.base_model": "tiny-base",
    "rung.base_model_sha256": "b" * 64,
    "rung.version.torch": "2.13.0",
}


def report(score: float, ship: bool = True, champion: float | None = None) -> dict:
    candidates = {"tuned": {"field_f1": score}, "few_shot": {"field_f1": 0.1}}
    if champion is not None:
        candidates["champion"] = {"field_f1": champion}
    return {
        "primary_metric": "field_f1",
        "candidates": candidates,
        "heldout_rows": 20,
        "verdict": {"ship": ship, "label": "SHIP" if ship else "NO-SHIP", "reasons": []},
        "interval": {
            "versus": "few_shot",
            "mean": score - 0.1,
            "low": 0.05,
            "high": 0.3,
            "confidence": 0.95,
        },
    }


def register(
    tmp_path: Path,
    name: str,
    score: float,
    evaluated: dict | None = None,
    run_id: str | None = None,
    dagster_run: str = "dagster-1",
) -> registry.Registration:
    if run_id is None:
        run_id = tracking.start_run(name, f"{dagster_run}-{score}", LINEAGE)
    adapter = tmp_path / f"adapter-{run_id}"
    adapter.mkdir(exist_ok=True)
    (adapter / "adapter_model.safetensors").write_bytes(f"weights {score}".encode())
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "training_args.bin").write_bytes(b"pickle")  # must not be registered
    card = tmp_path / "card"
    card.mkdir(exist_ok=True)
    (card / "data_card.md").write_text("# Data card")
    (tmp_path / "report.md").write_text("## Verdict: SHIP")
    return registry.register_adapter(
        name=name,
        run_id=run_id,
        adapter_dir=adapter,
        base_model=base_model(tmp_path),
        report=report(score, champion=(evaluated or {}).get("score")),
        evaluated_champion=evaluated,
        attachments={"data_card": [card], "evaluation": [tmp_path / "report.md"]},
        dagster_run_id=dagster_run,
    )


def test_a_first_version_is_champion_and_challenger_with_lineage_tags(tmp_path):
    done = register(tmp_path, "reg-first", 0.5)
    assert (done.version, done.created, done.aliases) == ("1", True, ["challenger", "champion"])
    client = tracking.configure_mlflow()
    version = client.get_model_version("reg-first", "1")
    for key, value in LINEAGE.items():
        assert version.tags[key] == value
    assert version.tags["rung.verdict"] == "SHIP"
    assert version.tags["rung.metric.field_f1"] == "0.500000"
    assert "[+0.0500, +0.3000]" in version.tags["rung.interval"]
    assert version.tags["rung.dagster_run_id"] == "dagster-1-0.5"  # the run that trained it
    assert version.tags["rung.registered_by_dagster_run"] == "dagster-1"
    assert version.tags["rung.version.orchestrator.mlflow"][0].isdigit()
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts("models:/reg-first/1"))
    assert sorted(p.name for p in (local / "artifacts" / "adapter").iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    pointer = json.loads((local / "artifacts" / "base_model.json").read_text())
    assert pointer == {
        **base_model(tmp_path),
        "weights": {"model.safetensors": hashlib.sha256(WEIGHTS).hexdigest()},
    }
    assert (local / "artifacts" / "data_card" / "data_card.md").is_file()
    assert (local / "artifacts" / "evaluation" / "report.md").is_file()
    assert "torch==2.13.0" in (local / "requirements.txt").read_text()


def test_registering_the_same_run_again_creates_no_second_version(tmp_path):
    first = register(tmp_path, "reg-idem", 0.5)
    run_id = tracking.configure_mlflow().get_model_version("reg-idem", "1").run_id
    again = register(tmp_path, "reg-idem", 0.5, run_id=run_id, dagster_run="dagster-2")
    assert not again.created and again.version == first.version and again.moves == []
    client = tracking.configure_mlflow()
    assert len(client.search_model_versions("name = 'reg-idem'")) == 1
    assert len(aliases.alias_history("reg-idem")) == 2


def test_a_reevaluation_of_a_registered_run_updates_its_tags_not_its_aliases(tmp_path):
    register(tmp_path, "reg-reeval", 0.5)
    client = tracking.configure_mlflow()
    run_id = client.get_model_version("reg-reeval", "1").run_id
    again = register(tmp_path, "reg-reeval", 0.55, run_id=run_id, dagster_run="dagster-9")
    version = client.get_model_version("reg-reeval", "1")
    assert not again.created and version.tags["rung.metric.field_f1"] == "0.550000"
    assert "dagster-9" in version.tags["rung.re_evaluated"]
    assert len(aliases.alias_history("reg-reeval")) == 2


def test_the_champion_moves_only_on_a_better_score_on_the_same_rows(tmp_path):
    name = "reg-ladder"
    register(tmp_path, name, 0.5)  # v1: champion
    worse = register(tmp_path, name, 0.4, evaluated={"version": "1", "score": 0.6})
    assert worse.aliases == ["challenger"] and "does not beat champion v1" in worse.decision
    better = register(tmp_path, name, 0.7, evaluated={"version": "1", "score": 0.6})
    assert better.aliases == ["challenger", "champion"] and "beats champion v1" in better.decision
    stale = register(tmp_path, name, 0.9, evaluated={"version": "1", "score": 0.6})
    assert stale.aliases == ["challenger"] and "the champion is now v3" in stale.decision

    client = tracking.configure_mlflow()
    assert client.get_model_version_by_alias(name, "champion").version in ("3", 3)
    moves = [(m.alias, m.version, m.previous) for m in aliases.alias_history(name)]
    assert moves == [
        ("challenger", "1", None),
        ("champion", "1", None),
        ("challenger", "2", "1"),
        ("challenger", "3", "2"),
        ("champion", "3", "1"),
        ("challenger", "4", "3"),
    ]
    assert "moved to v3" in client.get_model_version(name, "1").tags["rung.alias.champion.removed"]
    assert (
        "beats champion v1" in client.get_model_version(name, "3").tags["rung.alias.champion.set"]
    )
    assert "does not beat" in client.get_model_version(name, "2").tags["rung.promotion"]


def test_a_no_ship_report_is_never_registered(tmp_path):
    run_id = tracking.start_run("reg-noship", "dagster-1", LINEAGE)
    with pytest.raises(registry.RegistryError, match="only a SHIP verdict is registered"):
        registry.register_adapter(
            name="reg-noship",
            run_id=run_id,
            adapter_dir=tmp_path,
            base_model=BASE,
            report=report(0.9, ship=False),
            evaluated_champion=None,
            attachments={},
            dagster_run_id="dagster-1",
        )
    assert not aliases.registered_model_exists(tracking.configure_mlflow(), "reg-noship")


def test_the_champion_is_offered_for_evaluation_only_on_the_same_base_model(tmp_path):
    register(tmp_path, "reg-offer", 0.5)
    client = tracking.configure_mlflow()
    champion_run = client.get_model_version("reg-offer", "1").run_id
    offered = aliases.champion_for_evaluation(
        "reg-offer", BASE["sha256"], "another-run", tmp_path / "champion"
    )
    assert offered["version"] == "1" and offered["run_id"] == champion_run
    assert (Path(offered["adapter_dir"]) / "adapter_model.safetensors").read_bytes() == (
        b"weights 0.5"
    )
    other_base = aliases.champion_for_evaluation(
        "reg-offer", "e" * 64, "another-run", tmp_path / "x"
    )
    assert "another base model" in other_base["skipped"]
    itself = aliases.champion_for_evaluation(
        "reg-offer", BASE["sha256"], champion_run, tmp_path / "y"
    )
    assert "this run's own adapter" in itself["skipped"]
    assert aliases.champion_for_evaluation("reg-none", BASE["sha256"], "r", tmp_path / "z") == {}


@pytest.mark.parametrize(
    ("tuned", "now", "evaluated", "promote", "words"),
    [
        (0.5, None, None, True, "no champion yet"),
        (0.6, "2", {"version": "2", "score": 0.6}, False, "does not beat"),  # a tie keeps it
        (0.61, "2", {"version": "2", "score": 0.6}, True, "beats champion v2"),
        (0.9, "2", {"version": "2", "skipped": "another base model"}, False, "another base model"),
        (0.9, "2", None, False, "no champion when evaluated"),
    ],
)
def test_decide_promotion(tuned, now, evaluated, promote, words):
    decided, reason = decide_promotion("field_f1", tuned, now, evaluated)
    assert decided is promote and words in reason


def test_concurrent_registrations_keep_one_champion_chain(tmp_path):
    """Four processes register at the same moment, each evaluated against champion v1 and
    each better than it: one version each, no alias move lost, one promotion (the others
    learn the champion moved since their evaluation)."""
    from concurrent_registrations import assert_consistent, register_at_once

    name = "reg-concurrent"
    register(tmp_path, name, 0.5)  # v1: champion
    outcomes = register_at_once(
        tmp_path, name, [0.6, 0.7, 0.8, 0.9], evaluated={"version": "1", "score": 0.5}
    )
    assert_consistent(name, outcomes, first_version=2)
    [promoted] = [o for o in outcomes if "champion" in o["moves"]]
    assert tracking.configure_mlflow().get_model_version_by_alias(name, "champion").version in (
        promoted["version"],
        int(promoted["version"]),
    )
