"""Drift of a served model's traffic against the reference profile of its registered version.

The **reference profile** is computed at registration from the evaluation's held-out
predictions (what the tuned model was asked and answered when it was judged): input
lengths, output lengths, output categories (the labels of a classification task, the
JSON fields of an extraction task, each with its share), the validity rate (a label
in the label set / a strict JSON object / a non-empty answer), a sample of inputs and
outputs, and the answers to the forgetting probes. It travels with the version as
the artifact `reference_profile/reference_profile.json`.

`detect_drift` compares logged traffic (pipelines/lib/traffic.py) with it:

- input_length_ks, output_length_ks: two-sample Kolmogorov-Smirnov on lengths in
  characters; alerts when p < alpha.
- input_length_js: Jensen-Shannon divergence (base 2, squared: 0..1) of the input
  length histograms on the reference's deciles; alerts above js_max.
- output_categories_chi2: chi-squared on label / JSON-field counts (+ invalid
  answers); alerts when p < alpha. output_categories_js: the divergence of those
  shares; alerts above js_max.
- input_domain_auc: a classifier (TF-IDF character 2-4-grams + logistic regression)
  telling traffic inputs from the reference's, 5-fold cross-validated ROC AUC
  (0.5: indistinguishable); alerts above auc_max.
- input_novelty_ks: each input's similarity to its nearest reference input (same
  n-grams), traffic vs the reference's own leave-one-out similarities, KS; catches a
  share of unfamiliar inputs mixed into familiar ones; alerts when p < alpha.
- validity_drop: Fisher's exact test, one-sided (fewer valid answers than the
  reference); alerts when p < alpha and the drop is at least min_validity_drop.
- probe_answers: a probe question asked as traffic gets another answer than at
  evaluation (a changed model or base behind the same version); alerts above
  max_probe_changes.

When the version was shadowed (`rung serve --shadow LIVE=CHALLENGER`), the report also
compares the challenger's answers to copies of these requests (lib/shadow.py); that part
informs a promotion and never alerts.

Any alerting test makes the report alert (`rung monitor` exits 1, the Dagster check
`no_drift` fails). With fewer than `min_rows` logged requests nothing alerts: too
little traffic to tell. The defaults were chosen for a false-alarm rate under 5% on
samples of 50-200 requests (benchmarks/monitor.py, docs/benchmarks.md).

No Dagster import here; MLflow is imported only by the functions that use it.
"""

from __future__ import annotations

import json
import random
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.lib.metrics import normalize_label, parse_json_strict
from pipelines.lib.shadow import compare_shadow, format_shadow, shadow_pairs
from pipelines.lib.traffic import read_traffic, user_text

PROFILE_FORMAT = 1
PROFILE_FILE = "reference_profile.json"
PROFILE_ARTIFACT = "reference_profile"  # the registered version's artifacts/<this>/
INVALID = "<invalid>"
SAMPLE_SIZE = 300
MONITOR_EXPERIMENT = "rung-monitoring"


@dataclass(frozen=True)
class Thresholds:
    alpha: float = 0.01  # significance of each test (KS, chi-squared, Fisher)
    js_max: float = 0.1  # Jensen-Shannon divergence (base 2, 0..1) above which shares drifted
    auc_max: float = 0.7  # domain-classifier AUC above which inputs are told apart
    min_validity_drop: float = 0.05  # and a validity drop at least this large
    min_rows: int = 30  # fewer logged requests: too little traffic to tell
    max_probe_changes: int = 0
    max_classifier_rows: int = SAMPLE_SIZE  # per side, for the domain classifier


# --- the reference profile -----------------------------------------------------------


def output_category(text: str, task: str, labels: Sequence[str]) -> list[str]:
    """An answer's categories: its label (classification), its JSON fields (extraction),
    INVALID when it is neither; other tasks have none (an empty answer is INVALID)."""
    if task == "classification":
        return [normalize_label(text, labels) or INVALID]
    if task == "extraction":
        fields = parse_json_strict(text)
        return sorted(map(str, fields)) if fields is not None else [INVALID]
    return [] if text.strip() else [INVALID]


def is_valid(text: str, task: str, labels: Sequence[str]) -> bool:
    return INVALID not in output_category(text, task, labels)


def category_counts(outputs: Sequence[str], task: str, labels: Sequence[str]) -> dict[str, int]:
    counts = Counter(c for text in outputs for c in output_category(text, task, labels))
    return dict(sorted(counts.items()))


def _sample(items: Sequence[str], size: int, seed: int) -> list[str]:
    items = list(items)
    if len(items) <= size:
        return items
    return random.Random(seed).sample(items, size)


def reference_profile(
    predictions: Any,
    task: str,
    labels: Sequence[str] | None = None,
    candidate: str = "tuned",
    seed: int = 0,
) -> dict[str, Any]:
    """The profile of `candidate`'s held-out answers in an evaluation's predictions (a
    DataFrame with columns candidate, set, id, prompt, reference, output)."""
    frame = predictions[predictions["candidate"] == candidate]
    heldout = frame[frame["set"] == "heldout"]
    if not len(heldout):
        raise ValueError(f"no held-out predictions of candidate {candidate!r}")
    inputs = [str(x) for x in heldout["prompt"]]
    outputs = [str(x) for x in heldout["output"]]
    if task == "classification" and not labels:
        labels = sorted({str(x) for x in heldout["reference"]})
    labels = list(labels or [])
    counts = category_counts(outputs, task, labels)
    total = sum(counts.values())
    probes = frame[frame["set"] == "probe"]
    return {
        "format": PROFILE_FORMAT,
        "task": task,
        "labels": labels,
        "candidate": candidate,
        "rows": len(heldout),
        "input_chars": [len(x) for x in inputs],
        "output_chars": [len(x) for x in outputs],
        "category_counts": counts,
        "category_shares": {k: v / total for k, v in counts.items()} if total else {},
        "validity_rate": float(np.mean([is_valid(x, task, labels) for x in outputs])),
        "input_sample": _sample(inputs, SAMPLE_SIZE, seed),
        "output_sample": _sample(outputs, SAMPLE_SIZE, seed),
        "probes": {
            str(row["id"]): {"question": str(row["prompt"]), "answer": str(row["output"])}
            for _, row in probes.iterrows()
        },
    }


def write_reference_profile(
    predictions_file: Path, task: str, labels: Sequence[str] | None, folder: Path
) -> Path:
    """reference_profile.json in `folder`, from an evaluation's predictions.parquet."""
    import pandas as pd

    profile = reference_profile(pd.read_parquet(predictions_file), task, labels)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / PROFILE_FILE
    target.write_text(json.dumps(profile, ensure_ascii=False, indent=1), encoding="utf-8")
    return target


# --- the tests --------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftTest:
    name: str
    statistic: float | None
    p_value: float | None
    threshold: str
    alert: bool
    detail: str = ""


@dataclass
class DriftReport:
    task: str
    rows: int
    reference_rows: int
    status: str  # "ok", "drift", or "insufficient traffic"
    tests: list[DriftTest] = field(default_factory=list)
    validity: dict[str, float] = field(default_factory=dict)
    category_shares: dict[str, dict[str, float]] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)  # name, version, uri
    shadow: dict[str, Any] | None = None  # a challenger's answers to copies (lib/shadow.py)

    @property
    def alert(self) -> bool:
        return self.status == "drift"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "alert": self.alert}


def _ks(name: str, reference: Sequence[float], current: Sequence[float], alpha: float):
    from scipy.stats import ks_2samp

    result = ks_2samp(reference, current)
    return DriftTest(
        name,
        float(result.statistic),
        float(result.pvalue),
        f"p < {alpha}",
        bool(result.pvalue < alpha),
        f"median {np.median(reference):.0f} -> {np.median(current):.0f} chars",
    )


def _js(p: np.ndarray, q: np.ndarray) -> float:
    from scipy.spatial.distance import jensenshannon

    if p.sum() == 0 or q.sum() == 0:
        return 0.0
    return float(jensenshannon(p / p.sum(), q / q.sum(), base=2) ** 2)


def _length_js(reference: Sequence[float], current: Sequence[float], js_max: float):
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, 11)[1:-1]))
    p = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1)
    q = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1)
    value = _js(p.astype(float), q.astype(float))
    return DriftTest(
        "input_length_js", value, None, f"> {js_max}", value > js_max, "reference deciles"
    )


def _categories(reference: dict[str, int], current: dict[str, int], t: Thresholds):
    from scipy.stats import chi2_contingency

    names = sorted(set(reference) | set(current))
    p = np.array([reference.get(n, 0) for n in names], dtype=float)
    q = np.array([current.get(n, 0) for n in names], dtype=float)
    js = _js(p, q)
    moved = sorted(
        names,
        key=lambda n: (
            -abs(q[names.index(n)] / max(q.sum(), 1) - p[names.index(n)] / max(p.sum(), 1))
        ),
    )[:3]
    detail = "most moved: " + ", ".join(
        f"{n} {p[names.index(n)] / max(p.sum(), 1):.2f}->{q[names.index(n)] / max(q.sum(), 1):.2f}"
        for n in moved
    )
    tests = [DriftTest("output_categories_js", js, None, f"> {t.js_max}", js > t.js_max, detail)]
    if len(names) >= 2 and q.sum() and p.sum():
        chi2, pvalue, _, _ = chi2_contingency(np.vstack([p, q]))
        tests.insert(
            0,
            DriftTest(
                "output_categories_chi2",
                float(chi2),
                float(pvalue),
                f"p < {t.alpha}",
                bool(pvalue < t.alpha),
                detail,
            ),
        )
    return tests


def domain_auc(reference: Sequence[str], current: Sequence[str], seed: int = 0) -> float:
    """How well a classifier tells traffic inputs from reference inputs: cross-validated ROC
    AUC of TF-IDF character 2-4-grams + logistic regression (0.5: indistinguishable)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline

    texts = list(reference) + list(current)
    target = np.array([0] * len(reference) + [1] * len(current))
    folds = min(5, len(reference), len(current))
    model = make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True),
        LogisticRegression(max_iter=1000, C=1.0),
    )
    scores = cross_val_score(
        model,
        texts,
        target,
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        scoring="roc_auc",
    )
    return float(np.mean(scores))


def novelty_scores(reference: Sequence[str], current: Sequence[str]) -> tuple[list, list]:
    """Each input's similarity to its nearest reference input (cosine of TF-IDF character
    2-4-grams): reference inputs leave themselves out. A share of unfamiliar inputs (a
    mixture) shows as a lump of low scores even when a classifier's AUC barely moves."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
    matrix = vectorizer.fit_transform(list(reference) + list(current))
    ref, cur = matrix[: len(reference)], matrix[len(reference) :]
    within = (ref @ ref.T).toarray()
    np.fill_diagonal(within, -1.0)
    across = (cur @ ref.T).toarray()
    return within.max(axis=1).tolist(), across.max(axis=1).tolist()


def _novelty(reference: Sequence[str], current: Sequence[str], alpha: float) -> DriftTest:
    from scipy.stats import ks_2samp

    within, across = novelty_scores(reference, current)
    result = ks_2samp(within, across)
    floor = float(np.quantile(within, 0.05))
    share = float(np.mean(np.array(across) < floor))
    return DriftTest(
        "input_novelty_ks",
        float(result.statistic),
        float(result.pvalue),
        f"p < {alpha}",
        bool(result.pvalue < alpha),
        f"{share:.0%} of inputs less like the reference than its own 5% least typical",
    )


def _validity(reference_rate: float, reference_rows: int, valid: int, rows: int, t: Thresholds):
    from scipy.stats import fisher_exact

    ref_valid = round(reference_rate * reference_rows)
    current = valid / rows
    _, pvalue = fisher_exact(
        [[ref_valid, reference_rows - ref_valid], [valid, rows - valid]], alternative="greater"
    )
    drop = reference_rate - current
    return DriftTest(
        "validity_drop",
        drop,
        float(pvalue),
        f"p < {t.alpha} and drop >= {t.min_validity_drop}",
        bool(pvalue < t.alpha and drop >= t.min_validity_drop),
        f"valid {reference_rate:.2f} -> {current:.2f}",
    )


def probe_changes(
    profile: dict[str, Any],
    traffic: Sequence[dict[str, Any]],
    t: Thresholds,
    name: str = "probe_answers",
):
    """Probe questions asked as traffic (a lone user message): answered as at evaluation?"""
    expected = {p["question"]: p["answer"] for p in profile.get("probes", {}).values()}
    asked = [
        (r["messages"][0]["content"], r["output"])
        for r in traffic
        if len(r["messages"]) == 1 and r["messages"][0]["content"] in expected
    ]
    if not asked:
        return None
    changed = [q for q, answer in asked if answer.strip() != expected[q].strip()]
    return DriftTest(
        name,
        float(len(changed)),
        None,
        f"> {t.max_probe_changes} changed",
        len(changed) > t.max_probe_changes,
        f"{len(changed)} of {len(asked)} asked probes answered differently"
        + (f": {changed[0]!r}" if changed else ""),
    )


def ask_probes(
    profile: dict[str, Any],
    endpoint: str,
    served_as: str,
    version: str | None = None,
    timeout_s: float = 300,
) -> list[dict[str, Any]]:
    """The version's probe questions asked again through a live `rung serve` endpoint, as
    at evaluation (a lone user message, greedy, PROBE_MAX_NEW_TOKENS); marked as a
    monitor's probe, so the server keeps them out of the traffic log. With `version`, a
    server answering with another registered version is an error, not a changed model."""
    import urllib.request

    from pipelines.lib.evaluation import PROBE_MAX_NEW_TOKENS

    url = endpoint.rstrip("/") + "/v1/chat/completions"
    asked = []
    for probe in profile.get("probes", {}).values():
        messages = [{"role": "user", "content": probe["question"]}]
        body = {
            "model": served_as,
            "messages": messages,
            "max_tokens": PROBE_MAX_NEW_TOKENS,
            "metadata": {"rung_purpose": "probe"},
        }
        request = urllib.request.Request(
            url, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                reply = json.load(response)
            output = reply["choices"][0]["message"]["content"]
        except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise MonitorError(f"asking the probes at {url} as {served_as!r}: {exc}") from None
        served = reply.get("model_version")
        if version is not None and str(served) != str(version):
            raise MonitorError(
                f"{url} serves {served_as!r} as version {served}, not version {version}: "
                "restart `rung serve` after moving the alias, or monitor that version"
            )
        asked.append({"messages": messages, "output": output})
    return asked


def detect_drift(
    profile: dict[str, Any],
    traffic: Sequence[dict[str, Any]],
    thresholds: Thresholds | None = None,
    seed: int = 0,
) -> DriftReport:
    """Compare logged requests (each with `messages` and `output`) with a reference profile."""
    t = thresholds or Thresholds()
    task, labels = profile["task"], profile.get("labels", [])
    inputs = [user_text(r["messages"]) for r in traffic]
    outputs = [str(r["output"]) for r in traffic]
    report = DriftReport(task=task, rows=len(traffic), reference_rows=profile["rows"], status="ok")
    if len(traffic) < t.min_rows:
        report.status = "insufficient traffic"
        return report
    counts = category_counts(outputs, task, labels)
    total = sum(counts.values())
    report.category_shares = {
        "reference": profile["category_shares"],
        "current": {k: v / total for k, v in counts.items()} if total else {},
    }
    valid = sum(is_valid(x, task, labels) for x in outputs)
    report.validity = {"reference": profile["validity_rate"], "current": valid / len(outputs)}
    tests = [
        _ks("input_length_ks", profile["input_chars"], [len(x) for x in inputs], t.alpha),
        _length_js(profile["input_chars"], [len(x) for x in inputs], t.js_max),
        _ks("output_length_ks", profile["output_chars"], [len(x) for x in outputs], t.alpha),
    ]
    if profile["category_counts"]:
        tests += _categories(profile["category_counts"], counts, t)
    reference_texts = profile["input_sample"]
    current_texts = _sample(inputs, t.max_classifier_rows, seed)
    if min(len(reference_texts), len(current_texts)) >= 10:
        auc = domain_auc(reference_texts, current_texts, seed)
        tests.append(
            DriftTest(
                "input_domain_auc",
                auc,
                None,
                f"> {t.auc_max}",
                auc > t.auc_max,
                f"{len(reference_texts)} reference vs {len(current_texts)} traffic inputs",
            )
        )
        tests.append(_novelty(reference_texts, current_texts, t.alpha))
    tests.append(_validity(profile["validity_rate"], profile["rows"], valid, len(outputs), t))
    probe = probe_changes(profile, traffic, t)
    if probe is not None:
        tests.append(probe)
    report.tests = tests
    report.status = "drift" if any(test.alert for test in tests) else "ok"
    return report


def format_drift_report(report: DriftReport) -> str:
    """The report as people read it in a terminal."""
    model = report.model
    head = (
        f"{model.get('uri', '')} ({model.get('served_as', '')}): " if model else ""
    ) + f"{report.rows} requests vs {report.reference_rows} reference rows, task {report.task}"
    shadow = format_shadow(report.shadow, model.get("served_as", "live")) if report.shadow else []
    if report.status == "insufficient traffic" and not report.tests:
        status = "status: insufficient traffic (no test run; too few requests to tell)"
        return "\n".join([head, status, *shadow])
    width = max(len(test.name) for test in report.tests)
    lines = [
        head,
        f"{'test'.ljust(width)}  statistic  p-value   threshold                      alert  detail",
    ]
    for test in report.tests:
        stat = "" if test.statistic is None else f"{test.statistic:.4f}"
        p = "" if test.p_value is None else f"{test.p_value:.2g}"
        lines.append(
            f"{test.name.ljust(width)}  {stat:>9}  {p:>8}  {test.threshold:<30} "
            f"{'ALERT' if test.alert else 'ok':<5}  {test.detail}"
        )
    lines.append(f"status: {report.status.upper()}")
    return "\n".join([*lines, *shadow])


# --- monitoring a registered version -----------------------------------------------------


class MonitorError(RuntimeError):
    pass


@dataclass
class MonitorResult:
    report: DriftReport
    mlflow_run_id: str | None


def parse_model_reference(reference: str) -> tuple[str, str | None, str | None]:
    """`name`, `models:/name@alias` or `models:/name/N` -> (name, alias, version)."""
    body = reference.removeprefix("models:/")
    if "@" in body:
        name, alias = body.split("@", 1)
        return name, alias, None
    if "/" in body:
        name, version = body.split("/", 1)
        return name, None, version
    return body, "champion", None


def load_version_profile(client: Any, name: str, version: Any) -> dict[str, Any]:
    """The version's reference profile artifact; for a version registered before profiles
    existed, one computed now from its MLflow run's evaluation/predictions.parquet."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version.version}", dst_path=tmp
            )
            found = sorted(Path(local).rglob(PROFILE_FILE))
            if found:
                return json.loads(found[0].read_text(encoding="utf-8"))
            predictions = mlflow.artifacts.download_artifacts(
                run_id=version.run_id, artifact_path="evaluation/predictions.parquet", dst_path=tmp
            )
        except mlflow.exceptions.MlflowException as exc:
            raise MonitorError(
                f"models:/{name}/{version.version} has no {PROFILE_ARTIFACT} artifact and its run "
                f"{version.run_id} no evaluation/predictions.parquet ({exc.message})"
            ) from None
        params = client.get_run(version.run_id).data.params
        task = params.get("recipe.eval.task", "extraction")
        labels = json.loads(params.get("recipe.eval.labels", "null") or "null")
        import pandas as pd

        return reference_profile(pd.read_parquet(predictions), task, labels or None)


def monitor_model(
    reference: str,
    *,
    traffic_dir: Path,
    served_as: str | None = None,
    since: datetime | None = None,
    last: int | None = None,
    thresholds: Thresholds | None = None,
    log_to_mlflow: bool = True,
    dagster_run_id: str | None = None,
    probe_endpoint: str | None = None,
) -> MonitorResult:
    """Drift of a registered version's logged traffic; the result logged as an MLflow run in
    the experiment `rung-monitoring`, tagged with the model name and version."""
    import mlflow

    from pipelines.lib.tracking import configure_mlflow

    client = configure_mlflow()
    name, alias, number = parse_model_reference(reference)
    try:
        version = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, number)
        )
    except mlflow.exceptions.MlflowException as exc:
        raise MonitorError(f"{reference}: not in the MLflow registry ({exc.message})") from None
    profile = load_version_profile(client, name, version)
    served_as = served_as or name
    traffic = read_traffic(traffic_dir, served_as, str(version.version), since=since, last=last)
    report = detect_drift(profile, traffic, thresholds)
    if probe_endpoint:  # a changed model behind the same version answers them differently
        asked = ask_probes(profile, probe_endpoint, served_as, str(version.version))
        live = probe_changes(profile, asked, thresholds or Thresholds(), "probe_answers_live")
        if live is not None:
            report.tests.append(live)
            report.status = "drift" if live.alert or report.alert else report.status
    shadow, pairs = shadow_pairs(traffic_dir, served_as, traffic)
    if pairs:
        labels = profile.get("labels", [])
        report.shadow = compare_shadow(
            shadow, pairs, lambda text: is_valid(text, profile["task"], labels)
        )
    report.model = {
        "name": name,
        "version": str(version.version),
        "uri": f"models:/{name}/{version.version}",
        "alias": alias,
        "served_as": served_as,
    }
    run_id = (
        _log_run(client, report, thresholds or Thresholds(), dagster_run_id)
        if (log_to_mlflow)
        else None
    )
    return MonitorResult(report, run_id)


def _log_run(
    client: Any, report: DriftReport, thresholds: Thresholds, dagster_run_id: str | None
) -> str:
    from pipelines.lib import state_profile

    experiment = client.get_experiment_by_name(MONITOR_EXPERIMENT)
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment(
            MONITOR_EXPERIMENT, artifact_location=state_profile.experiment_artifact_location()
        )
    )
    model = report.model
    tags = {
        "rung.monitored_model": model["name"],
        "rung.monitored_version": model["version"],
        "rung.model_uri": model["uri"],
        "rung.drift_status": report.status,
        "rung.drift_alert": str(report.alert).lower(),
        "rung.drift_alerts": ",".join(t.name for t in report.tests if t.alert),
    }
    if dagster_run_id:
        tags["rung.dagster_run_id"] = dagster_run_id
    run = client.create_run(
        experiment_id, run_name=f"monitor-{model['name']}-v{model['version']}", tags=tags
    )
    run_id = run.info.run_id
    for key, value in asdict(thresholds).items():
        client.log_param(run_id, f"threshold.{key}", value)
    client.log_metric(run_id, "traffic_rows", report.rows)
    for test in report.tests:
        if test.statistic is not None:
            client.log_metric(run_id, f"{test.name}.statistic", test.statistic)
        if test.p_value is not None:
            client.log_metric(run_id, f"{test.name}.p_value", test.p_value)
    for side, rate in report.validity.items():
        client.log_metric(run_id, f"validity.{side}", rate)
    if report.shadow:
        client.set_tag(run_id, "rung.shadow_model", report.shadow["shadow"])
        client.log_metric(run_id, "shadow.pairs", report.shadow["pairs"])
        client.log_metric(run_id, "shadow.agreement", report.shadow["agreement"])
        for side in ("live", "challenger"):
            for key, value in report.shadow[side].items():
                client.log_metric(run_id, f"shadow.{side}.{key}", value)
    client.log_text(run_id, json.dumps(report.to_dict(), indent=1), "drift_report.json")
    client.log_text(run_id, format_drift_report(report), "drift_report.txt")
    client.set_terminated(run_id)
    return run_id
