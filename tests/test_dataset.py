import json

import pytest

from pipelines.lib import dataset
from pipelines.recipe import DataSection

DATA = DataSection(
    sources=["x.jsonl"],
    fields={"prompt": "address", "completion": "fields"},
    system_prompt="Extract.",
    heldout_fraction=0.2,
)


def write_rows(path, lines: list[bytes]):
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def row(address, **fields) -> bytes:
    return json.dumps({"address": address, "fields": fields or {"ZipCode": "1"}}).encode()


def test_normalize_text_nfc_controls_and_spaces():
    assert dataset.normalize_text("  Cafe\u0301\t\x07 St  \n  Apt 1 ") == "Caf\u00e9 St\nApt 1"


def test_bad_rows_are_quarantined_with_file_line_and_reason(tmp_path):
    source = write_rows(
        tmp_path / "raw.jsonl",
        [
            row("1 Main St"),
            b"{not json",
            b"\xff\xfe broken bytes",
            b"[1, 2]",
            json.dumps({"address": "2 Elm St"}).encode(),
            json.dumps({"address": 7, "fields": {"a": "b"}}).encode(),
            row("   "),
            row("1 Main St"),
        ],
    )
    parsed, bad = dataset.read_jsonl_sources([source])
    result = dataset.clean_rows(parsed, bad, DATA)
    reasons = {r.line: r.reason for r in result.quarantine.itertuples()}
    assert reasons[2].startswith("invalid JSON")
    assert reasons[3] == "invalid UTF-8 encoding"
    assert reasons[4] == "row is not a JSON object"
    assert reasons[5] == "missing field: fields"
    assert reasons[6].startswith("wrong type")
    assert reasons[7] == "empty or whitespace-only content"
    assert set(result.quarantine["source"]) == {str(source)}
    assert len(result.rows) == 1 and result.duplicates_removed == 1
    # Nothing is lost: every row in is kept, quarantined or a removed duplicate.
    assert result.rows_in == 8
    assert result.rows_in == len(result.rows) + len(result.quarantine) + result.duplicates_removed


def test_rows_become_conversations_with_json_answers(tmp_path):
    source = write_rows(tmp_path / "raw.jsonl", [row("9 Oak  Ave", AddressNumber="9", StreetName="Oak")])
    result = dataset.clean_rows(*dataset.read_jsonl_sources([source]), DATA)
    (messages,) = result.rows["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert messages[1]["content"] == "9 Oak Ave"
    assert json.loads(messages[2]["content"]) == {"AddressNumber": "9", "StreetName": "Oak"}


def _many_rows(n: int, start: int = 0) -> list[bytes]:
    return [row(f"{i} Street {i}") for i in range(start, start + n)]


def test_split_is_deterministic_disjoint_and_near_the_fraction(tmp_path):
    source = write_rows(tmp_path / "raw.jsonl", _many_rows(2000))
    rows = dataset.clean_rows(*dataset.read_jsonl_sources([source]), DATA).rows
    train, heldout = dataset.split_rows(rows, DATA)
    assert not set(train["id"]) & set(heldout["id"])
    assert len(train) + len(heldout) == 2000
    assert 0.17 < len(heldout) / 2000 < 0.23
    again_train, _ = dataset.split_rows(rows.sample(frac=1, random_state=1), DATA)
    assert set(again_train["id"]) == set(train["id"])


def test_held_out_rows_stay_held_out_when_rows_are_appended(tmp_path):
    small = write_rows(tmp_path / "small.jsonl", _many_rows(500))
    grown = write_rows(tmp_path / "grown.jsonl", _many_rows(500) + _many_rows(500, start=500))
    _, heldout_small = dataset.split_rows(
        dataset.clean_rows(*dataset.read_jsonl_sources([small]), DATA).rows, DATA
    )
    train_grown, heldout_grown = dataset.split_rows(
        dataset.clean_rows(*dataset.read_jsonl_sources([grown]), DATA).rows, DATA
    )
    assert set(heldout_small["id"]) <= set(heldout_grown["id"])
    assert not set(heldout_small["id"]) & set(train_grown["id"])


def test_max_rows_takes_the_same_sample_every_time(tmp_path):
    source = write_rows(tmp_path / "raw.jsonl", _many_rows(300))
    data = DATA.model_copy(update={"max_rows": 50})
    first = dataset.clean_rows(*dataset.read_jsonl_sources([source]), data)
    second = dataset.clean_rows(*dataset.read_jsonl_sources([source]), data)
    assert len(first.rows) == 50 and first.sampled_out == 250
    assert list(first.rows["id"]) == list(second.rows["id"])


@pytest.mark.parametrize("fraction", [0.1, 0.2])
def test_written_files_hash_their_content(tmp_path, fraction):
    source = write_rows(tmp_path / "raw.jsonl", _many_rows(50))
    rows = dataset.clean_rows(*dataset.read_jsonl_sources([source]), DATA).rows
    first = dataset.write_conversations(rows, tmp_path / "a.jsonl")
    second = dataset.write_conversations(rows, tmp_path / "b.jsonl")
    assert first == second == dataset.sha256_file(tmp_path / "a.jsonl")
    assert len(dataset.read_conversations(tmp_path / "a.jsonl")) == 50
