import json

import pytest

from pipelines.lib.retrieval import (
    METHODS,
    TEMPLATE,
    Passage,
    Retriever,
    chunk_corpus,
    recall_at_k,
    retrieval_messages,
)

CORPUS = [
    {"id": "volcano", "title": "Volcanoes", "text": "Magma rises through the crust and erupts."},
    {"id": "tide", "title": "Tides", "text": "The moon's gravity pulls the oceans into tides."},
    {"id": "bee", "title": "Bees", "text": "Honey bees dance to tell the hive where nectar is."},
    {"id": "glacier", "title": "Glaciers", "text": "Compacted snow slowly flows downhill as ice."},
]


@pytest.fixture
def passages(tmp_path):
    corpus = tmp_path / "facts.jsonl"
    corpus.write_text("".join(json.dumps(row) + "\n" for row in CORPUS))
    return chunk_corpus([corpus])


def test_jsonl_rows_are_passages_with_their_ids(passages):
    assert [(p.id, p.title) for p in passages] == [(r["id"], r["title"]) for r in CORPUS]
    assert passages[1].text == CORPUS[1]["text"]


def test_text_files_split_on_blank_lines_and_at_the_word_limit(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("First paragraph\nwraps here.\n\n\nOne two three four five six seven\n")
    passages = chunk_corpus([notes], max_words=3)
    assert [(p.id, p.text) for p in passages] == [
        ("notes-0", "First paragraph wraps"),
        ("notes-1", "here."),
        ("notes-2", "One two three"),
        ("notes-3", "four five six"),
        ("notes-4", "seven"),
    ]
    assert chunk_corpus([notes], max_words=3) == passages


def test_duplicate_passage_ids_are_refused(tmp_path):
    corpus = tmp_path / "twice.jsonl"
    corpus.write_text(json.dumps(CORPUS[0]) + "\n" + json.dumps(CORPUS[0]) + "\n")
    with pytest.raises(ValueError, match="'volcano' occurs twice"):
        chunk_corpus([corpus])


@pytest.mark.parametrize("method", METHODS)
def test_the_right_passage_ranks_first(passages, method):
    retriever = Retriever(passages, method=method)
    assert retriever.search("Why do oceans have tides?", k=1)[0].id == "tide"
    assert retriever.search("where is the nectar, asks the hive", k=2)[0].id == "bee"
    assert [p.id for p in retriever.search("glaciers", k=10)][0] == "glacier"
    assert len(retriever.search("glaciers", k=10)) == len(passages)


@pytest.mark.parametrize("method", METHODS)
def test_search_is_deterministic_and_ties_keep_passage_order(passages, method):
    twins = [Passage("b", "same words here"), Passage("a", "same words here"), *passages]
    first = [p.id for p in Retriever(twins, method).search("same words", k=3)]
    assert first[:2] == ["b", "a"]  # equal scores: corpus order, not id order
    again = Retriever(twins, method)
    assert [p.id for p in again.search("same words", k=3)] == first
    assert [p.id for p in again.search("same words", k=3)] == first
    # A query that matches nothing still returns k passages, in corpus order.
    assert [p.id for p in again.search("zzz qqq", k=2)] == ["b", "a"]


def test_unknown_method_and_empty_corpus_are_refused(passages):
    with pytest.raises(ValueError, match="unknown retrieval method"):
        Retriever(passages, method="dense")
    with pytest.raises(ValueError, match="at least one passage"):
        Retriever([])


def test_recall_at_k_counts_questions_whose_gold_passage_was_retrieved():
    retrieved = [["tide", "bee"], ["bee", "volcano"], ["glacier"], []]
    assert recall_at_k(retrieved, ["bee", "volcano", "tide", "tide"]) == 0.5
    assert recall_at_k([["a"]], ["a"]) == 1.0
    with pytest.raises(ValueError, match="one each"):
        recall_at_k([["a"]], ["a", "b"])


def test_passages_are_pasted_before_the_question_and_the_system_prompt_is_kept(passages):
    question = [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "What pulls the tides?"},
    ]
    messages = retrieval_messages(question, passages[:2])
    assert messages[0] == question[0]
    assert messages[1] == {
        "role": "user",
        "content": "Context:\n"
        "[1] Volcanoes: Magma rises through the crust and erupts.\n"
        "[2] Tides: The moon's gravity pulls the oceans into tides.\n"
        "\n"
        "Question: What pulls the tides?",
    }
    assert TEMPLATE.format(context="C", question="Q") == "Context:\nC\n\nQuestion: Q"
    assert question[1]["content"] == "What pulls the tides?"  # the input is not changed
    custom = retrieval_messages(question[1:], [Passage("x", "text")], "{question}\n{context}")
    assert custom == [{"role": "user", "content": "What pulls the tides?\n[1] text"}]


def test_a_conversation_that_still_holds_its_answer_is_refused(passages):
    answered = [
        {"role": "user", "content": "What pulls the tides?"},
        {"role": "assistant", "content": "The moon"},
    ]
    with pytest.raises(ValueError, match="up to the user's question"):
        retrieval_messages(answered, passages)
