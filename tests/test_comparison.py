"""`rung compare`: each recipe's latest run, from MLflow, reproductions left out."""

import uuid

from pipelines.cli import main
from pipelines.lib import tracking
from pipelines.lib.comparison import COLUMNS, comparison_rows, format_table


def finished_run(recipe_id: str, f1: float, **tags: str) -> str:
    run_id = tracking.start_run(
        recipe_id,
        f"dagster-{uuid.uuid4().hex}",
        {
            "rung.data_dvc_md5": "a" * 32,
            "rung.recipe_sha256": "b" * 64,
            "rung.primary_metric": "field_f1",
            "rung.verdict": "SHIP",
            "rung.interval_versus": "few_shot",
            **tags,
        },
    )
    tracking.log_metrics(
        tracking.configure_mlflow(),
        run_id,
        {"tuned.field_f1": f1, "gate.interval_low": 0.01, "gate.interval_high": 0.2},
    )
    tracking.finish_run(run_id)
    return run_id


def test_each_recipe_shows_its_latest_run_not_a_reproduction(capsys):
    finished_run("cmp-a", 0.4)
    latest = finished_run("cmp-a", 0.6, **{"rung.verdict": "NO-SHIP"})
    finished_run("cmp-a", 0.9, **{"rung.reproduces": latest})
    other = finished_run("cmp-b", 0.3)
    rows = comparison_rows(["cmp-a", "cmp-b", "cmp-never-run"])
    assert [r["mlflow run"] for r in rows] == [latest, other]
    first = rows[0]
    assert (first["verdict"], first["metric"], first["tuned"]) == ("NO-SHIP", "field_f1", "0.600")
    assert first["interval (vs)"] == "[+0.010, +0.200] vs few_shot"
    assert (first["data md5"], first["recipe sha"]) == ("a" * 12, "b" * 12)
    assert first["registered"] == "-"

    assert main(["compare", "cmp-a", "recipes/cmp-b.yaml"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["recipe", "started", "status"]
    assert latest in out and other in out


def test_an_empty_store_says_how_to_start():
    assert "rung run" in format_table([])
    assert set(COLUMNS) >= {"verdict", "tuned", "data md5", "recipe sha"}
