import json

import pytest

from pipelines import paths
from pipelines.lib import data_checks
from pipelines.lib.conversations import Conversation
from pipelines.lib.probes import all_probes
from pipelines.recipe import BalanceSection, DedupeSection

DEDUPE = DedupeSection()


def row(user: str, answer: str, **extra) -> dict:
    conversation = Conversation((("user", user), ("assistant", answer)))
    return {
        "id": conversation.content_id,
        "messages": conversation.messages_json(),
        "source": "f.jsonl",
        "line": 1,
        **extra,
    }


TRAIN = [
    row(
        f"Sort the words river stone lantern number {i} orchard copper meadow",
        f"copper lantern meadow {i} orchard river stone",
    )
    for i in range(40)
]


def test_a_planted_near_duplicate_leak_fails():
    leak = row(
        "Sort the words river stone lantern number 7 orchard copper meadow!!",
        "Copper lantern meadow 7 orchard river stone.",
    )
    clean = row("What is the capital of France?", "Paris.")
    assert data_checks.no_leakage(TRAIN, [clean], DEDUPE).passed
    outcome = data_checks.no_leakage(TRAIN, [clean, leak], DEDUPE)
    assert not outcome.passed and outcome.severity == "ERROR"
    assert outcome.metadata["near_duplicate"] == 1 and outcome.metadata["leaked_rows"] == 1
    assert "1 held-out rows leak into training" in outcome.description


def test_exact_and_group_leaks_fail():
    exact = data_checks.no_leakage(TRAIN, [TRAIN[3]], DEDUPE)
    assert exact.metadata["exact"] == 1 and not exact.passed
    train = [{**TRAIN[0], "groups": ["customer=c1"]}]
    heldout = [row("Unrelated question", "Unrelated answer", groups=["customer=c1"])]
    grouped = data_checks.no_leakage(train, heldout, DEDUPE)
    assert grouped.metadata["shared_group"] == 1 and not grouped.passed


def test_schema_check_recomputes_ids_and_turns():
    good = row("Hi", "Hello")
    assert data_checks.schema_valid([good], 256).passed
    tampered = {**good, "messages": [*good["messages"][:1], {"role": "assistant", "content": "x"}]}
    no_answer = {**good, "messages": good["messages"][:1]}
    too_long = {**good, "tokens": 300}
    outcome = data_checks.schema_valid([tampered, no_answer, too_long], 256)
    assert outcome.metadata["invalid_rows"] == 3
    assert "not the content hash" in outcome.metadata["examples"]


def test_duplicates_left_are_found():
    assert data_checks.no_duplicates(TRAIN, DEDUPE).passed  # similar rows, not near-duplicates
    twin = row(
        "Sort the words: river stone lantern number 3 orchard copper meadow",
        "Copper lantern meadow 3 orchard river stone!",
    )
    outcome = data_checks.no_duplicates([*TRAIN, twin], DEDUPE)
    assert outcome.metadata["near_duplicate_pairs"] == 1 and not outcome.passed
    distinct = [row("What is the capital of France?", "Paris."), row("Name a fruit", "Apple")]
    assert data_checks.no_duplicates(distinct, DEDUPE).passed
    assert data_checks.no_duplicates(distinct * 2, DEDUPE).metadata["exact_duplicates"] == 2


def test_class_balance_warns_then_blocks():
    balance = BalanceSection(warn_majority_share=0.6, max_majority_share=0.8)
    ok = data_checks.class_balance(["a"] * 5 + ["b"] * 5, ["a", "b"], balance)
    warn = data_checks.class_balance(["a"] * 7 + ["b"] * 3, ["a", "b"], balance)
    block = data_checks.class_balance(["a"] * 9 + ["b"], ["a", "b"], balance)
    assert ok.passed
    assert not warn.passed and warn.severity == "WARN"
    assert not block.passed and block.severity == "ERROR"
    assert "set data.balance.rebalance" in block.description
    assert data_checks.class_balance([], [], balance).passed  # unlabelled task


def test_heldout_size_minimum():
    assert data_checks.heldout_size(5, 5).passed
    small = data_checks.heldout_size(4, 5)
    assert not small.passed and "raise data.heldout_fraction" in small.description


PROBES = all_probes()


def test_probes_disjoint_fails_on_a_training_row_that_gives_a_probe_away():
    probe = next(p for p in PROBES if p.id == "capital-FR")
    planted = TRAIN + [row(probe.question, f"The capital is {probe.expected}.")]
    outcome = data_checks.probes_disjoint(planted, PROBES)
    assert not outcome.passed and outcome.severity == "ERROR"
    assert outcome.metadata["overlapping_probes"] == 1
    assert outcome.metadata["probe_ids"] == "capital-FR"
    assert "capital of France" in outcome.metadata["examples"]
    assert outcome.description.startswith(f"1 of {len(PROBES)} forgetting probes")


def test_probes_disjoint_reads_every_turn_and_a_pair_answer():
    prompt = {**row("Which word is the opposite of hot, please?", "x"), "chosen": "cold"}
    assert not data_checks.probes_disjoint([prompt], PROBES).passed
    assert data_checks.probes_disjoint(TRAIN, PROBES).passed
    assert data_checks.probes_disjoint(TRAIN, []).passed  # eval.probes: false


@pytest.mark.skipif(not paths.ADDRESS_CORPUS.exists(), reason="address corpus not set up")
def test_probes_disjoint_passes_on_the_address_corpus():
    records = [json.loads(line) for line in paths.ADDRESS_CORPUS.open()]
    rows = [row(r["address"], json.dumps(r["fields"])) for r in records]
    outcome = data_checks.probes_disjoint(rows, PROBES)
    assert outcome.passed, outcome.metadata["examples"]
    assert outcome.metadata["rows"] == len(records) > 1000
