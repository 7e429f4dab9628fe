"""Drift monitor: false alarms on in-distribution traffic, detection of two shifts.

No model runs: the reference profile is built from held-out rows of the address
corpus answered perfectly (the gold JSON, with a tenth of the answers broken as a
real model's are), and traffic is simulated:

- in-distribution: other addresses of the same corpus, answered the same way;
- shift 1, movie reviews sent to the address model: the vaderSentiment snippets;
- shift 2, non-US addresses: UK, German, French and Japanese style addresses made
  from templates.

For the shifts the answers are drawn from the reference answers, so only the
inputs differ: what the monitor sees when the model keeps answering in its usual
format (the hardest case; a model that broke its format is caught by more tests).
Each shift is also measured mixed into in-distribution traffic (25% shifted).

    .venv/bin/python benchmarks/monitor.py [--trials 200] [--rows 100]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402
from common import machine, write_results  # noqa: E402

from pipelines.lib.drift import Thresholds, detect_drift, reference_profile  # noqa: E402

ADDRESSES = REPO / "data" / "address" / "addresses.jsonl"
REVIEWS = REPO / "data" / "sentiment" / "movie_reviews.csv"
REFERENCE_ROWS = 200
BROKEN_SHARE = 0.1


def answer(fields: dict, rng: random.Random) -> str:
    """The model's answer: the gold JSON, or (a tenth of the time) prose around it."""
    text = json.dumps(fields)
    return f"Here are the fields: {text}" if rng.random() < BROKEN_SHARE else text


def address_rows() -> list[dict]:
    return [json.loads(line) for line in ADDRESSES.read_text().splitlines()]


def reviews() -> list[str]:
    with REVIEWS.open(newline="", encoding="utf-8") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


STREETS_UK = [
    "High Street",
    "Station Road",
    "Church Lane",
    "Victoria Road",
    "Mill Lane",
    "Baker Street",
    "Queens Road",
    "Park Avenue",
    "King's Road",
    "Green Lane",
]
TOWNS_UK = ["London", "Manchester", "Leeds", "Bristol", "York", "Oxford", "Cardiff", "Bath"]
STREETS_DE = [
    "Hauptstraße",
    "Bahnhofstraße",
    "Schulstraße",
    "Gartenweg",
    "Lindenallee",
    "Bergstraße",
    "Kirchplatz",
    "Am Markt",
]
TOWNS_DE = ["Berlin", "München", "Köln", "Hamburg", "Leipzig", "Dresden", "Bremen"]
STREETS_FR = [
    "rue de la Paix",
    "avenue des Champs-Élysées",
    "boulevard Saint-Michel",
    "rue du Faubourg",
    "place de la République",
    "chemin des Vignes",
]
TOWNS_FR = ["Paris", "Lyon", "Marseille", "Toulouse", "Nantes", "Lille"]
WARDS_JP = ["Shibuya-ku", "Minato-ku", "Chiyoda-ku", "Shinjuku-ku", "Nakano-ku"]


def non_us_address(rng: random.Random) -> str:
    """A UK, German, French or Japanese style address (synthetic)."""
    kind = rng.randrange(4)
    if kind == 0:
        letters = "ABCDEFGHJKLMNPRSTUWXYZ"
        postcode = (
            f"{rng.choice(letters)}{rng.choice(letters)}{rng.randint(1, 20)} "
            f"{rng.randint(1, 9)}{rng.choice(letters)}{rng.choice(letters)}"
        )
        flat = f"Flat {rng.randint(1, 30)}, " if rng.random() < 0.3 else ""
        return (
            f"{flat}{rng.randint(1, 250)} {rng.choice(STREETS_UK)}, {rng.choice(TOWNS_UK)} "
            f"{postcode}"
        )
    if kind == 1:
        return (
            f"{rng.choice(STREETS_DE)} {rng.randint(1, 120)}, {rng.randint(10000, 99999)} "
            f"{rng.choice(TOWNS_DE)}"
        )
    if kind == 2:
        return (
            f"{rng.randint(1, 200)} {rng.choice(STREETS_FR)}, {rng.randint(10, 95)}"
            f"{rng.randint(0, 999):03d} {rng.choice(TOWNS_FR)}"
        )
    return (
        f"{rng.randint(1, 5)}-{rng.randint(1, 30)}-{rng.randint(1, 20)} "
        f"{rng.choice(['Jingumae', 'Roppongi', 'Ebisu', 'Akasaka'])}, "
        f"{rng.choice(WARDS_JP)}, Tokyo {rng.randint(100, 199)}-{rng.randint(0, 9999):04d}"
    )


def traffic(inputs: list[str], outputs: list[str]) -> list[dict]:
    return [
        {"messages": [{"role": "user", "content": i}], "output": o} for i, o in zip(inputs, outputs)
    ]


def table(results: dict[str, dict]) -> list[str]:
    lines = [
        "| traffic sample | samples | alert rate | test alerting most often (its rate) |",
        "|---|---|---|---|",
    ]
    for label, result in results.items():
        top = max(result["by_test"].items(), key=lambda kv: kv[1], default=("", 0))
        lines.append(
            f"| {label} | {result['trials']} | {result['alert_rate']:.1%} | "
            f"{top[0]} ({top[1]:.1%}) |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=200, help="in-distribution resamples")
    parser.add_argument("--shift-trials", type=int, default=50, help="resamples per shift")
    parser.add_argument("--rows", type=int, default=100, help="requests per traffic sample")
    args = parser.parse_args()

    rng = random.Random(0)
    rows = address_rows()
    rng.shuffle(rows)
    reference_rows, pool = rows[:REFERENCE_ROWS], rows[REFERENCE_ROWS:]
    predictions = pd.DataFrame(
        {
            "candidate": "tuned",
            "set": "heldout",
            "id": r["id"],
            "prompt": r["address"],
            "reference": json.dumps(r["fields"]),
            "output": answer(r["fields"], rng),
        }
        for r in reference_rows
    )
    profile = reference_profile(predictions, "extraction")
    reference_outputs = list(predictions["output"])
    review_texts = reviews()
    thresholds = Thresholds()

    def in_distribution(n: int, r: random.Random) -> tuple[list[str], list[str]]:
        sample = r.sample(pool, n)
        return [x["address"] for x in sample], [answer(x["fields"], r) for x in sample]

    def shifted(kind: str, n: int, r: random.Random) -> tuple[list[str], list[str]]:
        texts = (
            r.sample(review_texts, n)
            if kind == "movie_reviews"
            else [non_us_address(r) for _ in range(n)]
        )
        return texts, [r.choice(reference_outputs) for _ in range(n)]

    def mixed(kind: str, share: float, n: int, r: random.Random) -> tuple[list[str], list[str]]:
        k = round(n * share)
        a_in, a_out = shifted(kind, k, r)
        b_in, b_out = in_distribution(n - k, r)
        return a_in + b_in, a_out + b_out

    results: dict[str, dict] = {}

    def measure(label: str, trials: int, make) -> None:
        alerts, by_test, started = 0, {}, time.perf_counter()
        for trial in range(trials):
            r = random.Random(1000 + trial)
            inputs, outputs = make(r)
            report = detect_drift(profile, traffic(inputs, outputs), thresholds, seed=trial)
            alerts += report.alert
            for test in report.tests:
                by_test[test.name] = by_test.get(test.name, 0) + test.alert
        seconds = time.perf_counter() - started
        results[label] = {
            "trials": trials,
            "alert_rate": alerts / trials,
            "by_test": {k: v / trials for k, v in sorted(by_test.items())},
            "seconds_per_check": seconds / trials,
        }
        print(
            f"{label}: alert rate {alerts / trials:.3f} over {trials} "
            f"({seconds / trials:.2f} s per check); by test {results[label]['by_test']}",
            flush=True,
        )

    n = args.rows
    measure("in_distribution", args.trials, lambda r: in_distribution(n, r))
    for kind in ("movie_reviews", "non_us_addresses"):
        measure(kind, args.shift_trials, lambda r, k=kind: shifted(k, n, r))
        measure(f"{kind}_25pct", args.shift_trials, lambda r, k=kind: mixed(k, 0.25, n, r))
    small = 50
    measure(f"in_distribution_{small}_rows", args.trials, lambda r: in_distribution(small, r))

    summary = {
        "machine": machine(),
        "rows_per_sample": n,
        "reference_rows": REFERENCE_ROWS,
        "thresholds": thresholds.__dict__,
        "results": results,
    }
    lines = table(results)
    write_results("monitor", summary, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
