"""`rung check`: the data stages and their checks only, with a summary and an exit code."""

from __future__ import annotations

import pytest

from pipelines.cli import main
from pipelines.lib.base_model import embedded_model_dir
from pipelines.recipe import recipe_path

pytestmark = pytest.mark.skipif(
    not (embedded_model_dir() / "config.json").is_file(),
    reason="embedded base model not prepared (make model)",
)


def test_labelled_data_passes_its_checks_and_shows_class_shares(capsys):
    assert main(["check", str(recipe_path("tickets-labelled"))]) == 0
    out = capsys.readouterr().out
    assert "=== rung check: tickets-labelled: PASSED ===" in out
    assert "rows in" in out and "split: " in out
    assert "class shares (team; train / held-out):" in out
    for label in ("billing", "returns", "shipping"):
        assert f"  {label}" in out
    checks = {x.split()[1]: x.split()[0] for x in out.splitlines() if x.startswith("  passed")}
    assert checks == {
        "cleaned_data.schema_valid": "passed",
        "cleaned_data.no_duplicates": "passed",
        "split.no_leakage": "passed",
        "split.class_balance": "passed",
        "split.heldout_size": "passed",
    }
    assert "data card: " in out and out.rstrip().splitlines()[-2].endswith("data_card.md")
    assert "training_run" not in out


def test_a_planted_leak_fails_the_check_and_names_it_with_its_reason(capsys):
    assert main(["check", str(recipe_path("leaky-near-duplicates"))]) == 1
    out = capsys.readouterr().out
    assert "=== rung check: leaky-near-duplicates: FAILED ===" in out
    line = next(x for x in out.splitlines() if "split.no_leakage" in x and "FAILED" in x)
    assert "leak into training" in line
    assert "failed: blocking check split.no_leakage: " in out


def test_a_recipe_error_exits_2(tmp_path, capsys):
    recipe = tmp_path / "typo.yaml"
    recipe.write_text("data:\n  heldout_fractoin: 0.2\n")
    assert main(["check", str(recipe)]) == 2
    assert "heldout_fractoin" in capsys.readouterr().err
