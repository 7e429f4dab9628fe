"""The `rung check` summary, formatted from hand-made values."""

from __future__ import annotations

from pathlib import Path

import orjson

from pipelines.lib.asset_values import CleanedData, Split
from pipelines.lib.data_summary import (
    CheckResult,
    DataSummary,
    QuarantineReason,
    collect_data_summary,
    excerpt,
    format_data_summary,
    quarantine_reasons,
    source_line,
)

COUNTS = {
    "rows_in": 200,
    "kept": 150,
    "quarantined": 20,
    "exact_duplicates": 10,
    "near_duplicates": 8,
    "too_long": 4,
    "sampled_out": 8,
}


def summary(**changes) -> DataSummary:
    values = {
        "recipe_id": "tickets",
        "counts": COUNTS,
        "train_rows": 120,
        "heldout_rows": 30,
        "label_field": "team",
        "class_shares": {"billing": (0.5, 0.4), "shipping": (0.5, 0.6)},
        "quarantine": [
            QuarantineReason("invalid JSON", 12, "data/t.jsonl:7", "invalid JSON: x", '{"a": '),
            QuarantineReason("missing field", 8, "data/t.jsonl:9", "missing field: 'team'"),
        ],
        "checks": [
            CheckResult("cleaned_data", "schema_valid", True, "0 of 150 rows break the schema"),
            CheckResult("split", "class_balance", False, "majority 60%", severity="WARN"),
        ],
        "data_card": "/runs/tickets/1/split/data_card/data_card.md",
    }
    return DataSummary(**{**values, **changes})


def test_a_passing_summary_shows_counts_split_classes_reasons_checks_and_the_card():
    text = format_data_summary(summary())
    lines = text.splitlines()
    assert lines[0] == "=== rung check: tickets: PASSED ==="
    assert lines[1].split() == ["rows", "in", "200"]
    assert lines[2].split() == ["kept", "150", "(75.0%)"]
    for label, n in [("quarantined", 20), ("exact duplicates", 10), ("near duplicates", 8)]:
        assert any(line.startswith(label) and f" {n} " in line for line in lines), label
    assert any(line.startswith("too long") for line in lines)
    assert any(line.startswith("sampled out") for line in lines)
    assert "split: 120 train, 30 held-out rows" in lines
    assert "class shares (team; train / held-out):" in lines
    assert "  billing    50% /  40%" in lines
    assert "  12 × invalid JSON, e.g. data/t.jsonl:7: invalid JSON: x" in lines
    assert '      {"a": ' in lines
    assert lines.index("  8 × missing field, e.g. data/t.jsonl:9: missing field: 'team'") > 0
    assert "  passed   cleaned_data.schema_valid  0 of 150 rows break the schema" in lines
    assert "  warning  split.class_balance        majority 60%" in lines  # WARN does not block
    assert lines[-1] == "data card: /runs/tickets/1/split/data_card/data_card.md"
    assert "failed" not in text


def test_a_blocking_check_fails_the_summary_and_is_named_as_the_cause():
    leak = CheckResult("split", "no_leakage", False, "8 held-out rows leak into training")
    result = summary(checks=[leak], failure="split_no_leakage: DagsterAssetCheckFailedError: ...")
    text = format_data_summary(result)
    assert not result.passed
    assert text.startswith("=== rung check: tickets: FAILED ===")
    assert "  FAILED   split.no_leakage  8 held-out rows leak into training" in text
    assert "failed: blocking check split.no_leakage: 8 held-out rows leak into training" in text
    assert "DagsterAssetCheckFailedError" not in text


def test_a_failed_stage_shows_its_cause_and_the_checks_that_did_not_run():
    result = DataSummary(
        "tickets",
        checks=[CheckResult("cleaned_data", "schema_valid", None)],
        failure="cleaned_data: 12 of 20 rows (60.0%) are bad",
    )
    assert not result.passed
    assert format_data_summary(result).splitlines() == [
        "=== rung check: tickets: FAILED ===",
        "checks:",
        "  not run  cleaned_data.schema_valid",
        "failed: cleaned_data: 12 of 20 rows (60.0%) are bad",
    ]


def test_unlabelled_data_shows_no_class_shares_and_zero_counts_no_percentages():
    text = format_data_summary(summary(class_shares={}, label_field=None, quarantine=[]))
    assert "class shares" not in text and "quarantine reasons" not in text
    counts = {**COUNTS, "too_long": 0}
    line = next(x for x in format_data_summary(summary(counts=counts)).splitlines() if "too" in x)
    assert line.split() == ["too", "long", "0"]


def test_quarantine_reasons_are_counted_by_class_with_the_first_row_as_example():
    rows = [
        {"source": "a.jsonl", "line": 2, "reason": "invalid JSON: Expecting value at column 1"},
        {"source": "a.jsonl", "line": 5, "reason": "missing field: 'messages'"},
        {"source": "b.jsonl", "line": 1, "reason": "invalid JSON: Unterminated string"},
    ]
    lines = {("a.jsonl", 2): '{"messages": [' + "x" * 100, ("a.jsonl", 5): "{}\n"}
    reasons = quarantine_reasons(rows, lambda source, line: lines.get((source, line)), top=1)
    assert reasons == [
        QuarantineReason(
            "invalid JSON",
            2,
            "a.jsonl:2",
            "invalid JSON: Expecting value at column 1",
            '{"messages": [' + "x" * 45 + "…",
        )
    ]
    assert len(excerpt("word " * 50)) == 60


def test_source_line_reads_the_numbered_line_of_a_text_file(tmp_path: Path):
    (tmp_path / "rows.jsonl").write_text('{"a": 1}\nbroken\n')
    assert source_line(tmp_path, "rows.jsonl", 2) == "broken\n"
    assert source_line(tmp_path, "rows.jsonl", 9) is None
    assert source_line(tmp_path, "gone.jsonl", 1) is None
    (tmp_path / "rows.parquet").write_bytes(b"PAR1")
    assert source_line(tmp_path, "rows.parquet", 1) is None


def test_collect_reads_quarantine_and_class_shares_from_the_stage_files(tmp_path: Path):
    def jsonl(name: str, rows: list[dict]) -> str:
        path = tmp_path / name
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
        return str(path)

    (tmp_path / "src.csv").write_text("q,team\n,billing\n")
    cleaned = CleanedData(
        recipe_id="t",
        file=jsonl("cleaned.jsonl", []),
        sha256="0" * 64,
        quarantine_file=jsonl(
            "quarantine.jsonl", [{"source": "src.csv", "line": 2, "reason": "missing field: 'q'"}]
        ),
        dropped_file=jsonl("dropped.jsonl", []),
        counts={**COUNTS, "quarantined": 1},
        drop_reasons={},
        timings_s={},
        counts_reconcile=True,
    )
    split = Split(
        recipe_id="t",
        train_file=jsonl("train.jsonl", [{"label": "a"}, {"label": "a"}, {"label": "b"}]),
        heldout_file=jsonl("heldout.jsonl", [{"label": "a"}]),
        train_rows=3,
        heldout_rows=1,
        train_sha256="1" * 64,
        heldout_sha256="2" * 64,
        cleaned_sha256="0" * 64,
        label_field="team",
        data_card="/card.md",
        data_card_embedded="/card_embedded.md",
    )
    checks = [CheckResult("split", "no_leakage", True, "0 leak")]
    result = collect_data_summary("t", cleaned, split, checks, sources_root=tmp_path)
    assert result.class_shares == {"a": (2 / 3, 1.0), "b": (1 / 3, 0.0)}
    assert result.quarantine == [
        QuarantineReason("missing field", 1, "src.csv:2", "missing field: 'q'", ",billing")
    ]
    assert (result.train_rows, result.heldout_rows, result.data_card) == (3, 1, "/card.md")
    assert result.passed
    empty = collect_data_summary("t", None, None, [], sources_root=tmp_path, failure="raw_data: x")
    assert empty.counts == {} and empty.train_rows is None and not empty.passed
