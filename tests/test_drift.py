"""Drift tests on synthetic traffic (no model): the address and movie-review corpora.

The reference is held-out addresses answered with their gold JSON (a tenth of the
answers wrapped in prose, as a real model's are); in-distribution traffic is other
addresses answered the same way; the shifts send movie reviews or non-US addresses.
"""

from __future__ import annotations

import csv
import json
import random

import pandas as pd
import pytest

from pipelines import paths
from pipelines.lib.drift import (
    INVALID,
    Thresholds,
    detect_drift,
    format_drift_report,
    reference_profile,
)

NON_US = [
    "Flat {n}, {m} Baker Street, London NW1 {n}XE",
    "Hauptstraße {n}, 1{m:04d} Berlin",
    "{n} rue de la Paix, 75{m:03d} Paris",
    "{n}-{m}-3 Jingumae, Shibuya-ku, Tokyo 150-{m:04d}",
    "{m} Station Road, Leeds LS{n} 4QT",
    "Bahnhofstraße {n}, 8{m:04d} München",
]


def _answer(fields: dict, rng: random.Random) -> str:
    text = json.dumps(fields)
    return f"Here are the fields: {text}" if rng.random() < 0.1 else text


@pytest.fixture(scope="module")
def addresses() -> list[dict]:
    rows = [json.loads(line) for line in paths.ADDRESS_CORPUS.read_text().splitlines()]
    random.Random(0).shuffle(rows)
    return rows


@pytest.fixture(scope="module")
def address_profile(addresses) -> dict:
    rng = random.Random(1)
    predictions = pd.DataFrame(
        [
            {
                "candidate": "tuned",
                "set": "heldout",
                "id": r["id"],
                "prompt": r["address"],
                "reference": json.dumps(r["fields"]),
                "output": _answer(r["fields"], rng),
            }
            for r in addresses[:200]
        ]
        + [  # other candidates and sets are not the reference
            {
                "candidate": "baseline",
                "set": "heldout",
                "id": "x",
                "prompt": "p",
                "reference": "{}",
                "output": "prose",
            },
            {
                "candidate": "tuned",
                "set": "probe",
                "id": "capital-FR",
                "prompt": "What is the capital of France?",
                "reference": "Paris",
                "output": "Paris.",
            },
        ]
    )
    return reference_profile(predictions, "extraction")


def _traffic(inputs: list[str], outputs: list[str]) -> list[dict]:
    return [
        {
            "messages": [{"role": "system", "content": "Extract."}, {"role": "user", "content": i}],
            "output": o,
        }
        for i, o in zip(inputs, outputs)
    ]


def _in_distribution(addresses: list[dict], seed: int, n: int = 100) -> list[dict]:
    rng = random.Random(seed)
    sample = rng.sample(addresses[200:], n)
    return _traffic([r["address"] for r in sample], [_answer(r["fields"], rng) for r in sample])


def test_the_reference_profile_describes_the_tuned_models_heldout_answers(address_profile):
    profile = address_profile
    assert profile["task"] == "extraction" and profile["rows"] == 200
    assert len(profile["input_chars"]) == 200 and len(profile["input_sample"]) == 200
    assert 0.85 <= profile["validity_rate"] <= 0.95  # a tenth wrapped in prose
    shares = profile["category_shares"]
    assert shares["AddressNumber"] > 0.1 and INVALID in shares
    assert sum(shares.values()) == pytest.approx(1.0)
    assert profile["probes"] == {
        "capital-FR": {"question": "What is the capital of France?", "answer": "Paris."}
    }
    json.dumps(profile)  # stored as a JSON artifact


def test_a_classification_profile_counts_labels_and_invalid_answers():
    predictions = pd.DataFrame(
        {
            "candidate": "tuned",
            "set": "heldout",
            "id": str(i),
            "prompt": f"review {i}",
            "reference": ref,
            "output": out,
        }
        for i, (ref, out) in enumerate(
            [
                ("positive", "Positive."),
                ("negative", "negative"),
                ("neutral", "meh"),
                ("positive", "positive"),
            ]
        )
    )
    profile = reference_profile(predictions, "classification")
    assert profile["labels"] == ["negative", "neutral", "positive"]
    assert profile["category_counts"] == {INVALID: 1, "negative": 1, "positive": 2}
    assert profile["validity_rate"] == 0.75


def test_in_distribution_resamples_raise_no_alert(address_profile, addresses):
    for seed in range(5):
        report = detect_drift(address_profile, _in_distribution(addresses, seed), seed=seed)
        assert report.status == "ok", format_drift_report(report)
        assert {t.name for t in report.tests} >= {
            "input_length_ks",
            "input_length_js",
            "output_length_ks",
            "output_categories_chi2",
            "output_categories_js",
            "input_domain_auc",
            "input_novelty_ks",
            "validity_drop",
        }


def test_movie_reviews_sent_to_the_address_model_alert(address_profile):
    with paths.SENTIMENT_CORPUS.open(newline="", encoding="utf-8") as handle:
        reviews = [row["text"] for row in csv.DictReader(handle)]
    rng = random.Random(3)
    outputs = [rng.choice(address_profile["output_sample"]) for _ in range(100)]
    # the model kept its format: only the inputs tell
    report = detect_drift(address_profile, _traffic(rng.sample(reviews, 100), outputs))
    assert report.alert
    alerts = {t.name for t in report.tests if t.alert}
    assert {"input_domain_auc", "input_length_ks"} <= alerts
    assert "DRIFT" in format_drift_report(report)


def test_non_us_addresses_alert(address_profile):
    rng = random.Random(4)
    inputs = [
        rng.choice(NON_US).format(n=rng.randint(1, 9), m=rng.randint(10, 999)) for _ in range(100)
    ]
    outputs = [rng.choice(address_profile["output_sample"]) for _ in range(100)]
    report = detect_drift(address_profile, _traffic(inputs, outputs))
    assert report.alert and "input_domain_auc" in {t.name for t in report.tests if t.alert}


def test_a_third_of_unfamiliar_inputs_among_familiar_ones_alerts(address_profile, addresses):
    rng = random.Random(6)
    traffic = _in_distribution(addresses, 6)
    for row in traffic[:35]:
        row["messages"][-1]["content"] = rng.choice(NON_US).format(
            n=rng.randint(1, 9), m=rng.randint(10, 999)
        )
    report = detect_drift(address_profile, traffic)
    assert "input_novelty_ks" in {t.name for t in report.tests if t.alert}


def test_broken_answers_alert_on_validity_and_fields(address_profile, addresses):
    traffic = _in_distribution(addresses, 7)
    for row in traffic[:40]:
        row["output"] = "I cannot help with that."
    report = detect_drift(address_profile, traffic)
    alerts = {t.name for t in report.tests if t.alert}
    assert {"validity_drop", "output_categories_chi2"} <= alerts
    assert report.validity["current"] < report.validity["reference"] - 0.3


def test_a_label_shift_alerts_on_the_label_shares():
    rng = random.Random(5)
    labels = ["negative", "neutral", "positive"]
    reference = pd.DataFrame(
        {
            "candidate": "tuned",
            "set": "heldout",
            "id": str(i),
            "prompt": f"a review of film {i}",
            "reference": label,
            "output": label,
        }
        for i, label in enumerate(rng.choice(labels) for _ in range(150))
    )
    profile = reference_profile(reference, "classification")
    shifted = _traffic(
        [f"a review of film {i}" for i in range(100)], ["negative"] * 80 + ["positive"] * 20
    )
    report = detect_drift(profile, shifted)
    alerts = {t.name for t in report.tests if t.alert}
    assert {"output_categories_chi2", "output_categories_js"} <= alerts


def test_too_little_traffic_runs_no_test(address_profile, addresses):
    report = detect_drift(address_profile, _in_distribution(addresses, 0, n=10))
    assert report.status == "insufficient traffic" and not report.alert and not report.tests
    assert "insufficient traffic" in format_drift_report(report)


def test_a_probe_asked_as_traffic_must_get_its_evaluation_answer(address_profile, addresses):
    traffic = _in_distribution(addresses, 1)
    probe = {"messages": [{"role": "user", "content": "What is the capital of France?"}]}
    same = detect_drift(address_profile, [*traffic, {**probe, "output": "Paris."}])
    changed = detect_drift(address_profile, [*traffic, {**probe, "output": "Lyon."}])
    assert not same.alert
    assert changed.alert and [t.name for t in changed.tests if t.alert] == ["probe_answers"]


def test_thresholds_decide_what_alerts(address_profile, addresses):
    traffic = _in_distribution(addresses, 2)
    strict = detect_drift(address_profile, traffic, Thresholds(auc_max=0.0))
    assert strict.alert and "input_domain_auc" in {t.name for t in strict.tests if t.alert}
