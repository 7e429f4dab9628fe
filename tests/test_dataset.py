import json
from pathlib import Path

import pytest

from pipelines.lib import dataset
from pipelines.lib.base_model import embedded_model_dir
from pipelines.lib.token_length import ChatTokenCounter
from pipelines.recipe import DataSection

FIXTURES = Path(__file__).parent / "fixtures" / "raw_sources"
needs_model = pytest.mark.skipif(
    not (embedded_model_dir() / "tokenizer.json").is_file(),
    reason="embedded base model not prepared (make model)",
)


def words_count(conversations):
    """A stand-in tokenizer for tests that are not about tokens: one token per word."""
    return [sum(len(m["content"].split()) for m in c) for c in conversations]


def clean(sources, data, count_tokens=words_count, sequence_len=256):
    return dataset.clean_sources(
        sources, data, count_tokens=count_tokens, sequence_len=sequence_len
    )


def reasons_by_line(result):
    return {q["line"]: q["reason"] for q in result.quarantine}


def test_bad_chat_rows_are_quarantined_with_file_line_and_reason():
    source = FIXTURES / "bad_chat.jsonl"
    result = clean([source], DataSection(sources=["x"], format="messages"))
    reasons = reasons_by_line(result)
    assert reasons[2].startswith("invalid JSON")
    assert reasons[3] == "missing field: 'messages'"
    assert reasons[4].startswith("wrong type: 'messages' is text")
    assert reasons[5].startswith("unknown role: messages[0].role is 'narrator'")
    assert reasons[6].startswith("bad turn order: turn 0 is 'assistant'")
    assert reasons[7] == "empty or whitespace-only content: turn 0 (user)"
    assert reasons[8] == "empty or whitespace-only content: turn 1 (assistant)"
    assert reasons[9] == "no assistant turn"
    assert reasons[10].startswith("invalid encoding: not UTF-8 (byte 0xe9")
    assert reasons[16].startswith("wrong type: messages[0].content is int")
    assert reasons[17] == "missing field: messages[0].content"
    assert reasons[20].startswith("bad turn order: turn 1 is 'user'")
    assert {q["source"] for q in result.quarantine} == {str(source)}

    stages = {d["line"]: d["stage"] for d in result.dropped}
    assert stages == {
        11: "exact_duplicate",
        12: "exact_duplicate",
        14: "near_duplicate",
        18: "too_long",
    }
    assert [r.line for r in result.rows] == [1, 13, 15, 19]
    # Nothing is lost: every row in is kept, quarantined, a removed duplicate or too long.
    assert result.counts == {
        "rows_in": 20,
        "kept": 4,
        "quarantined": 12,
        "exact_duplicates": 2,
        "near_duplicates": 1,
        "too_long": 1,
        "sampled_out": 0,
    }
    assert result.reconciles()


def test_hostile_lines_are_quarantined_not_a_crash(tmp_path):
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    source = tmp_path / "hostile.jsonl"
    source.write_bytes(
        b"\n".join(
            [
                json.dumps(good).encode(),
                b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # nested 100,000 deep
                b'{"messages": [{"role": "user", "content": "a\x00b"}]}',  # a raw NUL byte
                json.dumps([good]).encode(),  # a list, not an object
            ]
        )
        + b"\n"
    )
    result = clean([source], DataSection(sources=["x"], format="messages"))
    reasons = reasons_by_line(result)
    assert reasons[2] == "invalid JSON: nested too deeply"
    assert reasons[3].startswith("invalid JSON: Invalid control character")
    assert reasons[4].startswith("wrong type: the row is a JSON list")
    assert [r.line for r in result.rows] == [1] and result.reconciles()


def test_cleaned_text_is_normalized():
    result = clean([FIXTURES / "bad_chat.jsonl"], DataSection(sources=["x"], format="messages"))
    (row,) = [r for r in result.rows if r.line == 15]
    assert row.conversation.messages == (
        ("user", "Caf\u00e9 au lait, please"),
        ("assistant", "Coming right up."),
    )


def test_csv_rows_with_a_column_mapping():
    source = FIXTURES / "bad_prompts.csv"
    data = DataSection(
        sources=["x"],
        fields={"prompt": "question", "completion": "answer"},
        label_field="topic",
        max_bad_fraction=1.0,
    )
    result = clean([source], data)
    reasons = reasons_by_line(result)
    assert reasons == {
        4: "empty or whitespace-only content: turn 0 (user)",
        5: "empty or whitespace-only content: turn 1 (assistant)",
        6: "wrong type: 4 cells, the header has 3",
        7: "invalid encoding: not UTF-8",
    }
    assert [(r.line, r.label) for r in result.rows] == [(2, "math"), (3, "words"), (8, "misc")]
    assert result.rows[1].conversation.messages[0] == ("user", 'Spell "cat" backwards')
    assert result.rows[2].conversation.messages[0] == ("user", "A question that spans\ntwo lines?")
    assert result.counts["exact_duplicates"] == 1 and result.reconciles()


def test_preference_pairs_are_checked():
    data = DataSection(sources=["x"], format="preference", max_bad_fraction=1.0)
    result = clean([FIXTURES / "preference_pairs.jsonl"], data)
    assert reasons_by_line(result) == {
        2: "chosen equals rejected: the pair teaches no preference",
        3: "empty or whitespace-only content: chosen or rejected answer",
        4: "empty or whitespace-only content: chosen or rejected answer",
        5: "chosen equals rejected: the pair teaches no preference",
        6: "wrong type: 'rejected' is int, expected text",
        7: "missing field: 'rejected'",
    }
    (row,) = result.rows
    assert row.to_json()["chosen"] == "A cat sat on a mat." and result.reconciles()


def test_sharegpt_alpaca_and_parquet_sources_read_in_order(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = tmp_path / "rows.parquet"
    pq.write_table(
        pa.Table.from_pylist(
            [
                {
                    "conversations": [
                        {"from": "human", "value": "Hi"},
                        {"from": "gpt", "value": "Hello"},
                    ]
                },
                {
                    "conversations": [
                        {"from": "human", "value": "Hey"},
                        {"from": "robot", "value": "x"},
                    ]
                },
            ]
        ),
        parquet,
    )
    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text(
        json.dumps(
            {"conversations": [{"from": "human", "value": "Yo"}, {"from": "gpt", "value": "Sup"}]}
        )
        + "\n"
    )
    result = clean(
        [parquet, jsonl], DataSection(sources=["x"], format="sharegpt", max_bad_fraction=1.0)
    )
    assert [(r.source, r.line) for r in result.rows] == [(str(parquet), 1), (str(jsonl), 1)]
    assert result.quarantine[0]["reason"].startswith("unknown role: conversations[1].from")


def test_too_many_bad_rows_fail_with_a_clear_message():
    result = clean([FIXTURES / "bad_chat.jsonl"], DataSection(sources=["x"], format="messages"))
    message = result.failure(0.05)
    assert "12 of 20 rows (60.0%) are bad, over data.max_bad_fraction 5.0%" in message
    assert "bad_chat.jsonl line 2: invalid JSON" in message
    assert result.failure(0.7) is None


def test_an_empty_result_always_fails(tmp_path):
    source = tmp_path / "all_bad.jsonl"
    source.write_text('{"prompt": "x"}\n')
    result = clean([source], DataSection(sources=["x"]))
    assert not result.rows
    assert "no usable rows" in result.failure(1.0)


def test_rows_over_sequence_len_are_dropped_never_truncated():
    data = DataSection(sources=["x"], format="messages", max_bad_fraction=1.0)
    result = clean([FIXTURES / "bad_chat.jsonl"], data, sequence_len=10)
    too_long = [d for d in result.dropped if d["stage"] == "too_long"]
    assert {d["line"] for d in too_long} == {13, 14, 18}  # measured before near dedupe
    assert "tokens > train.sequence_len 10" in too_long[0]["detail"]
    assert all(r.tokens <= 10 for r in result.rows) and result.reconciles()


@needs_model
def test_token_counts_use_the_base_models_chat_template():
    counter = ChatTokenCounter(embedded_model_dir())
    data = DataSection(sources=["x"], format="messages", max_bad_fraction=1.0)
    result = clean([FIXTURES / "bad_chat.jsonl"], data, count_tokens=counter.count)
    (row,) = [r for r in result.rows if r.line == 1]
    assert row.tokens == len(counter.ids(row.conversation.training_messages()))
    assert row.tokens > 20  # the template adds SmolLM's default system prompt


def _many(n: int, start: int = 0) -> list[str]:
    return [
        json.dumps({"prompt": f"{i} Street {i} apartment {i * 7}", "completion": f"{i}"})
        for i in range(start, start + n)
    ]


def test_max_rows_takes_the_same_sample_every_time(tmp_path):
    source = tmp_path / "raw.jsonl"
    source.write_text("\n".join(_many(300)) + "\n")
    data = DataSection(sources=["x"], max_rows=50)
    first, second = clean([source], data), clean([source], data)
    assert len(first.rows) == 50 and first.counts["sampled_out"] == 250
    assert [r.id for r in first.rows] == [r.id for r in second.rows]
    assert first.reconciles()


def test_skip_rows_gives_a_sample_disjoint_from_the_first(tmp_path):
    source = tmp_path / "raw.jsonl"
    source.write_text("\n".join(_many(300)) + "\n")
    first = clean([source], DataSection(sources=["x"], max_rows=100))
    larger = clean([source], DataSection(sources=["x"], max_rows=160))
    rest = clean([source], DataSection(sources=["x"], max_rows=60, skip_rows=100))
    ids = {
        name: {r.id for r in result.rows}
        for name, result in (("first", first), ("larger", larger), ("rest", rest))
    }
    assert ids["first"] < ids["larger"]  # samples nest
    assert not ids["first"] & ids["rest"]  # skipping the first 100 leaves exactly them out
    assert ids["first"] | ids["rest"] == ids["larger"]
    assert rest.counts["sampled_out"] == 240 and rest.reconciles()


def test_written_files_are_reproducible(tmp_path):
    source = tmp_path / "raw.jsonl"
    source.write_text("\n".join(_many(50)) + "\n")
    rows = [r.to_json() for r in clean([source], DataSection(sources=["x"])).rows]
    first = dataset.write_jsonl(rows, tmp_path / "a.jsonl")
    second = dataset.write_jsonl(rows, tmp_path / "b.jsonl")
    assert first == second == dataset.sha256_file(tmp_path / "a.jsonl")
    assert dataset.read_jsonl(tmp_path / "a.jsonl") == rows
