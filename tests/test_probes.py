import json
import re

import pytest

from pipelines import paths
from pipelines.lib.probes import (
    Probe,
    all_probes,
    arithmetic_probes,
    capital_probes,
    family_counts,
    probe_overlap,
    question_core,
)

FAMILIES = {
    "capitals": 100,
    "arithmetic": 36,
    "numbers": 20,
    "instructions": 10,
    "opposites": 41,
    "plurals": 39,
    "calendar": 19,
    "facts": 25,
    "translation": 12,
}


def test_the_suite_has_hundreds_of_distinct_probes_in_nine_families():
    probes = all_probes()
    assert len(probes) == len({p.id for p in probes}) == sum(FAMILIES.values()) == 302
    assert family_counts(probes) == FAMILIES


def test_the_suite_is_the_same_every_time_and_a_prefix_is_balanced():
    assert all_probes() == all_probes()
    assert all_probes(40) == all_probes()[:40]
    assert family_counts(all_probes(18)) == {family: 2 for family in FAMILIES}
    assert all_probes(None) == all_probes() and all_probes(0) == []


def test_the_seeded_generator_is_pinned():
    # Python guarantees only random.random()'s stream; these ids catch any drift.
    assert [p.id for p in arithmetic_probes()[:6]] == [
        "add-13-16",
        "sub-25-9",
        "mul-7-7",
        "add-6-4",
        "sub-29-17",
        "mul-7-9",
    ]


def test_arithmetic_answers_are_right():
    for probe in arithmetic_probes():
        a, op, b = re.match(r"What is (\d+) (\+|-|times) (\d+)\?", probe.question).groups()
        a, b = int(a), int(b)
        assert int(probe.expected) == {"+": a + b, "-": a - b, "times": a * b}[op] > 0


def test_capitals_are_the_most_populous_unambiguous_ones():
    ids = [p.id for p in capital_probes()]
    assert ids[:3] == ["capital-CN", "capital-IN", "capital-US"]
    assert "capital-FR" in ids
    assert "capital-ZA" not in ids and "capital-UA" not in ids  # several or renamed capitals
    assert "capital-MX" not in ids  # "Mexico City": echoing the question would pass


def test_questions_and_answers_are_short_and_an_echo_never_passes():
    for probe in all_probes():
        assert len(probe.question) <= 90, probe.id
        assert len(probe.expected.split()) <= 3, probe.id
        assert probe.match in ("contains", "exact")
        assert not probe.passed(probe.question), probe.id  # repeating the question fails
        assert probe.passed(probe.expected + ".")
        if probe.match == "contains":
            assert probe.passed(f"The answer is {probe.expected}.")


def test_answers_are_matched_word_bounded_and_accent_blind():
    capital = Probe("c", "capitals", "What is the capital of Brazil?", "Brasilia", "contains")
    assert capital.passed("The capital of Brazil is Brasília.")
    assert not capital.passed("I do not know.")
    add = Probe("a", "arithmetic", "2+3?", "5", "contains")
    assert add.passed("5") and add.passed("The answer is 5.") and not add.passed("15")
    yes = Probe("y", "instructions", "Say YES", "YES", "exact")
    assert yes.passed("YES.") and not yes.passed("yes") and not yes.passed("YES, sure")


FRANCE = Probe(
    "capital-FR",
    "capitals",
    "What is the capital of France? Answer with the city name only.",
    "Paris",
    "contains",
    subject="France",
)
SUM = Probe(
    "add-12-9",
    "arithmetic",
    "What is 12 + 9? Answer with the number only.",
    "21",
    "contains",
    subject="12 + 9",
)
SAY = Probe(
    "say-yes", "instructions", "Reply with the single word yes in capital letters.", "YES", "exact"
)


def test_the_question_core_drops_the_answer_format():
    assert question_core(FRANCE) == "what is the capital of france"
    assert question_core(SUM) == "what is 12 + 9"


@pytest.mark.parametrize(
    ("text", "given_away"),
    [
        ("Q: what is the capital of FRANCE?", ["capital-FR"]),  # the question, any answer
        ("Paris is a lovely city; France has many.", ["capital-FR"]),  # subject with answer
        ("Paris, Texas is hot.", []),  # the answer alone says nothing
        ("I visited France.", []),
        ("12+9=21", ["add-12-9"]),  # same tokens, spacing aside
        ("112 + 95 = 210 and 21", []),  # token-bounded: 12 + 9 is not in 112 + 95
        ("Please reply with the single word yes in capital letters!", ["say-yes"]),
        ("YES", []),  # no subject: only the question gives it away
    ],
)
def test_overlap_is_the_question_or_subject_with_answer(text, given_away):
    assert probe_overlap([FRANCE, SUM, SAY], [text]) == given_away


def test_a_short_question_gives_a_probe_away_only_as_written():
    hello = next(p for p in all_probes() if p.id == "say-hello")
    assert question_core(hello) == "say hello"  # everyday English when folded
    assert probe_overlap([hello], ["User: Say HELLO.\nAssistant: HELLO"]) == ["say-hello"]
    assert probe_overlap([hello], ["Do say hello to Bob for me."]) == []


def test_overlap_reports_ids_in_probe_order_from_any_iterable():
    texts = iter(["12 + 9 is 21", "nothing here", "France: Paris"])
    assert probe_overlap([FRANCE, SUM, SAY], texts) == ["capital-FR", "add-12-9"]


def test_a_planted_training_row_gives_real_probes_away():
    probes = all_probes()
    planted = next(p for p in probes if p.id == "opposite-hot")
    row = f"User: {planted.question}\nAssistant: {planted.expected}"
    assert probe_overlap(probes, ["Some unrelated text.", row]) == ["opposite-hot"]


@pytest.mark.skipif(not paths.ADDRESS_CORPUS.exists(), reason="address corpus not set up")
def test_the_address_corpus_gives_no_probe_away():
    rows = [json.loads(line) for line in paths.ADDRESS_CORPUS.open()]
    texts = [r["address"] + "\n" + json.dumps(r["fields"]) for r in rows]
    assert probe_overlap(all_probes(), texts) == []
