import json

import pytest

from pipelines.lib.conversations import (
    RowRejected,
    group_keys,
    normalize_text,
    raw_label,
    to_conversation,
)
from pipelines.recipe import DataSection


def data(fmt: str, **extra) -> DataSection:
    return DataSection(sources=["x.jsonl"], format=fmt, **extra)


def test_normalize_text_nfc_controls_invisibles_and_spaces():
    assert normalize_text("  Cafe\u0301\t\x07 St\u200b  \n  Apt 1 ") == "Caf\u00e9 St\nApt 1"
    assert normalize_text("a\r\n\n\n\n b") == "a\n\nb"


def test_each_format_maps_to_the_one_schema():
    system = {"system_prompt": "Be brief."}
    cases = [
        (
            data("messages", **system),
            {
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Yo"},
                ]
            },
        ),
        (
            data("sharegpt", **system),
            {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]},
        ),
        (data("prompt_completion", **system), {"prompt": "Hi", "completion": "Yo"}),
        (
            data("alpaca", **system, prompt_template="{prompt}"),
            {"instruction": "Hi", "input": "", "output": "Yo"},
        ),
    ]
    for section, record in cases:
        conversation = to_conversation(record, section)
        assert conversation.messages == (
            ("system", "Be brief."),
            ("user", "Hi"),
            ("assistant", "Yo"),
        ), section.format


def test_field_mapping_renames_raw_fields_and_alpaca_joins_its_input():
    section = data("alpaca", fields={"instruction": "task", "input": "context", "output": "answer"})
    conversation = to_conversation(
        {"task": "Translate", "context": "chat", "answer": "cat"}, section
    )
    assert conversation.messages == (("user", "Translate\n\nchat"), ("assistant", "cat"))


def test_an_object_completion_becomes_json_text():
    conversation = to_conversation(
        {"prompt": "9 Oak Ave", "completion": {"Street": " Oak "}}, data("prompt_completion")
    )
    assert json.loads(conversation.messages[-1][1]) == {"Street": "Oak"}


def test_preference_pairs_keep_both_answers_and_refuse_equal_ones():
    section = data("preference")
    pair = to_conversation({"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}, section)
    assert pair.messages == (("user", "Hi"),)
    assert (pair.chosen, pair.rejected) == ("Hello!", "Go away.")
    assert pair.training_messages()[-1] == {"role": "assistant", "content": "Hello!"}
    with pytest.raises(RowRejected, match="chosen equals rejected"):
        to_conversation({"prompt": "Hi", "chosen": "Hello  !", "rejected": "Hello !"}, section)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"conversations": []}, "missing field: 'messages'"),
        ({"messages": "hi"}, "wrong type: 'messages' is text that is not a JSON list"),
        ({"messages": 7}, "wrong type: 'messages' is int, expected a list"),
        ({"messages": ["hi"]}, "wrong type: messages[0] is str"),
        (
            {"messages": [{"role": "bot", "content": "x"}]},
            "unknown role: messages[0].role is 'bot'",
        ),
        ({"messages": [{"role": "user", "content": "\ud800"}]}, "invalid encoding"),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "user", "content": "b"},
                    {"role": "assistant", "content": "c"},
                ]
            },
            "bad turn order: turn 1",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": "b"},
                    {"role": "user", "content": "c"},
                ]
            },
            "ends with a user turn",
        ),
        ({"messages": [{"role": "user", "content": "a"}]}, "no assistant turn"),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": " "}]},
            "empty or whitespace-only content: turn 1",
        ),
    ],
)
def test_bad_conversations_are_refused_with_a_reason(record, reason):
    with pytest.raises(RowRejected) as err:
        to_conversation(record, data("messages"))
    assert str(err.value).startswith(reason) or reason in str(err.value)


def test_content_id_is_a_hash_of_normalized_content():
    section = data("prompt_completion")
    a = to_conversation({"prompt": "Hi  there", "completion": "Yo"}, section)
    b = to_conversation({"prompt": " Hi there ", "completion": "Yo"}, section)
    c = to_conversation({"prompt": "Hi there", "completion": "Yo!"}, section)
    assert a.content_id == b.content_id != c.content_id


def test_labels_and_group_keys():
    assert raw_label({"label": 1}, "label") == "1"
    with pytest.raises(RowRejected, match="missing field: 'label'"):
        raw_label({}, "label")
    assert group_keys({"customer": "c1", "x": 1}, ["customer"]) == ("customer=c1",)
    with pytest.raises(RowRejected, match=r"missing field: 'customer' \(data.group_by\)"):
        group_keys({"customer": ""}, ["customer"])
