"""What `rung check` prints after the data stages: a short data card for the terminal.

Rows in / kept / dropped by reason, the split, class shares of labelled data, the
commonest quarantine reasons with an example row each, every data check's result
and where the full data card is. `collect_data_summary` reads the stage outputs;
`format_data_summary` only formats, so it is tested with hand-made values.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.lib.asset_values import CleanedData, Split
from pipelines.lib.dataset import read_jsonl
from pipelines.lib.splitting import class_shares

COUNT_LABELS = {  # CleanedData.counts keys, in the order they reconcile
    "rows_in": "rows in",
    "kept": "kept",
    "quarantined": "quarantined",
    "exact_duplicates": "exact duplicates",
    "near_duplicates": "near duplicates",
    "too_long": "too long",
    "sampled_out": "sampled out",
}
TOP_REASONS = 3
EXCERPT_CHARS = 60


@dataclass(frozen=True)
class CheckResult:
    asset: str
    name: str
    passed: bool | None  # None: the check did not run (its asset failed first)
    description: str = ""
    severity: str = "ERROR"  # a failed ERROR check blocks training; WARN only warns

    @property
    def blocks(self) -> bool:
        return self.passed is False and self.severity == "ERROR"

    @property
    def status(self) -> str:
        if self.passed is None:
            return "not run"
        if self.passed:
            return "passed"
        return "FAILED" if self.blocks else "warning"


@dataclass(frozen=True)
class QuarantineReason:
    reason: str  # the reason's class, e.g. "invalid JSON"
    rows: int
    where: str  # the first such row: "file:line"
    detail: str  # its full reason
    excerpt: str | None = None  # the start of that row as the file holds it


@dataclass(frozen=True)
class DataSummary:
    recipe_id: str
    counts: dict[str, int] = field(default_factory=dict)  # empty when cleaned_data failed
    train_rows: int | None = None
    heldout_rows: int | None = None
    label_field: str | None = None
    class_shares: dict[str, tuple[float, float]] = field(default_factory=dict)  # train, held-out
    quarantine: list[QuarantineReason] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    data_card: str | None = None
    failure: str | None = None  # the stage or check that failed, and why

    @property
    def passed(self) -> bool:
        """Every stage ran and no blocking check failed."""
        return self.failure is None and not any(c.blocks or c.passed is None for c in self.checks)


def reason_class(reason: str) -> str:
    """'invalid JSON: Expecting value at column 3' -> 'invalid JSON' (as the data card counts)."""
    return reason.split(":")[0]


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """One line, at most `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def source_line(root: Path, source: str, line: int) -> str | None:
    """Line `line` (from 1) of a text source as it is on disk; None for Parquet (its rows
    are positions, not lines) or a file that is gone."""
    path = root / source
    if path.suffix.lower() == ".parquet" or not path.is_file():
        return None
    with path.open(encoding="utf-8", errors="replace") as handle:
        return next(itertools.islice(handle, line - 1, None), None)


def quarantine_reasons(
    rows: list[dict[str, Any]],
    read_line: Callable[[str, int], str | None],
    top: int = TOP_REASONS,
) -> list[QuarantineReason]:
    """The `top` commonest reasons of quarantined rows ({source, line, reason}), each with
    its first row (file:line, full reason and an excerpt of the row)."""
    counts = Counter(reason_class(r["reason"]) for r in rows)
    first: dict[str, dict[str, Any]] = {}
    for row in rows:
        first.setdefault(reason_class(row["reason"]), row)
    out = []
    for reason, n in counts.most_common(top):
        row = first[reason]
        text = read_line(row["source"], row["line"])
        out.append(
            QuarantineReason(
                reason=reason,
                rows=n,
                where=f"{row['source']}:{row['line']}",
                detail=row["reason"],
                excerpt=excerpt(text) if text is not None else None,
            )
        )
    return out


def split_class_shares(split: Split) -> dict[str, tuple[float, float]]:
    """label -> (share of training rows, share of held-out rows), from the split files."""
    if not split.label_field:
        return {}
    shares = [
        class_shares([str(r["label"]) for r in read_jsonl(Path(file)) if "label" in r])
        for file in (split.train_file, split.heldout_file)
    ]
    return {
        label: (shares[0].get(label, 0.0), shares[1].get(label, 0.0))
        for label in sorted(set(shares[0]) | set(shares[1]))
    }


def collect_data_summary(
    recipe_id: str,
    cleaned: CleanedData | None,
    split: Split | None,
    checks: list[CheckResult],
    *,
    sources_root: Path,
    failure: str | None = None,
) -> DataSummary:
    """The summary of one run of the data stages, from their values (None when the stage
    did not produce one) and the checks' results."""
    quarantine: list[QuarantineReason] = []
    if cleaned is not None and cleaned.counts.get("quarantined"):
        quarantine = quarantine_reasons(
            read_jsonl(Path(cleaned.quarantine_file)),
            lambda source, line: source_line(sources_root, source, line),
        )
    return DataSummary(
        recipe_id=recipe_id,
        counts=dict(cleaned.counts) if cleaned is not None else {},
        train_rows=split.train_rows if split is not None else None,
        heldout_rows=split.heldout_rows if split is not None else None,
        label_field=split.label_field if split is not None else None,
        class_shares=split_class_shares(split) if split is not None else {},
        quarantine=quarantine,
        checks=checks,
        data_card=split.data_card if split is not None else None,
        failure=failure,
    )


def _percent(share: float) -> str:
    return f"{share:.0%}"


def format_data_summary(summary: DataSummary) -> str:
    """The summary as the terminal shows it."""
    verdict = "PASSED" if summary.passed else "FAILED"
    lines = [f"=== rung check: {summary.recipe_id}: {verdict} ==="]
    if summary.counts:
        width = max(len(label) for label in COUNT_LABELS.values())
        rows_in = summary.counts.get("rows_in", 0)
        for key, label in COUNT_LABELS.items():
            if key not in summary.counts:
                continue
            n = summary.counts[key]
            share = f"  ({n / rows_in:.1%})" if key != "rows_in" and n and rows_in else ""
            lines.append(f"{label:<{width}}  {n:>7}{share}")
    if summary.train_rows is not None:
        lines.append(f"split: {summary.train_rows} train, {summary.heldout_rows} held-out rows")
    if summary.class_shares:
        lines.append(f"class shares ({summary.label_field}; train / held-out):")
        width = max(len(label) for label in summary.class_shares)
        for label, (train, heldout) in summary.class_shares.items():
            lines.append(f"  {label:<{width}}  {_percent(train):>4} / {_percent(heldout):>4}")
    if summary.quarantine:
        lines.append("commonest quarantine reasons:")
        for q in summary.quarantine:
            lines.append(f"  {q.rows} × {q.reason}, e.g. {q.where}: {q.detail}")
            if q.excerpt is not None:
                lines.append(f"      {q.excerpt}")
    if summary.checks:
        lines.append("checks:")
        width = max(len(f"{c.asset}.{c.name}") for c in summary.checks)
        for c in summary.checks:
            text = f"  {c.status:<7}  {c.asset + '.' + c.name:<{width}}"
            lines.append(f"{text}  {c.description}".rstrip())
    blocking = [c for c in summary.checks if c.blocks]
    if blocking:  # the run's failure is these checks: say which and why, not the exception
        for c in blocking:
            lines.append(f"failed: blocking check {c.asset}.{c.name}: {c.description}")
    elif summary.failure:
        lines.append(f"failed: {summary.failure}")
    if summary.data_card:
        lines.append(f"data card: {summary.data_card}")
    return "\n".join(lines)
