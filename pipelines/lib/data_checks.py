"""The data checks behind the Dagster asset checks, as plain functions on rows.

Each returns a `CheckOutcome`: passed, severity (ERROR blocks training, WARN
only shows), a one-line description and metadata for the UI. The checks re-read
what the assets wrote and recompute what they claim, so a bug (or a hand-edited
file) upstream is caught before training starts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from pipelines.lib import near_duplicates
from pipelines.lib.conversations import Conversation, RowRejected, check_turns
from pipelines.lib.dataset import row_signatures
from pipelines.lib.probes import Probe, find_probe_overlaps
from pipelines.lib.splitting import class_shares
from pipelines.recipe import BalanceSection, DedupeSection

EXAMPLES = 5  # offending rows shown per check


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    description: str
    severity: Literal["ERROR", "WARN"] = "ERROR"
    metadata: dict[str, Any] = field(default_factory=dict)


def _conversation(row: dict[str, Any]) -> Conversation:
    messages = tuple((m["role"], m["content"]) for m in row["messages"])
    return Conversation(messages, row.get("chosen"), row.get("rejected"))


def _dedupe_text(row: dict[str, Any]) -> str:
    return _conversation(row).dedupe_text()


def schema_valid(rows: list[dict[str, Any]], sequence_len: int) -> CheckOutcome:
    """Every cleaned row has the one schema: valid turns, id = content hash, fits training."""
    problems: list[str] = []
    for row in rows:
        where = f"{row.get('source')} line {row.get('line')}"
        try:
            conversation = _conversation(row)
            check_turns(list(conversation.messages), needs_answer=conversation.chosen is None)
        except (KeyError, TypeError, RowRejected) as exc:
            problems.append(f"{where}: {exc}")
            continue
        if conversation.content_id != row["id"]:
            problems.append(f"{where}: id {row['id']} is not the content hash")
        if row.get("tokens") is not None and row["tokens"] > sequence_len:
            problems.append(f"{where}: {row['tokens']} tokens > sequence_len {sequence_len}")
    return CheckOutcome(
        passed=not problems,
        description=f"{len(problems)} of {len(rows)} rows break the cleaned schema",
        metadata={
            "rows": len(rows),
            "invalid_rows": len(problems),
            "examples": "\n".join(problems[:EXAMPLES]) or "none",
        },
    )


def no_duplicates(rows: list[dict[str, Any]], dedupe: DedupeSection) -> CheckOutcome:
    """No exact duplicate ids; no near-duplicate pairs when near dedupe is on."""
    ids = Counter(r["id"] for r in rows)
    exact = sum(n - 1 for n in ids.values() if n > 1)
    near = 0
    examples: list[str] = []
    if dedupe.near and len(rows) > 1:
        sig = row_signatures(rows, [r["id"] for r in rows], dedupe, _dedupe_text)
        pairs = near_duplicates.similar_pairs(sig, dedupe.threshold)
        near = len(pairs)
        examples = [
            f"{rows[a]['source']} line {rows[a]['line']} ~ "
            f"{rows[b]['source']} line {rows[b]['line']}"
            for a, b in pairs[:EXAMPLES]
        ]
    return CheckOutcome(
        passed=exact == 0 and near == 0,
        description=f"{exact} exact and {near} near-duplicate pairs left after dedupe",
        metadata={
            "exact_duplicates": exact,
            "near_duplicate_pairs": near,
            "near_dedupe": dedupe.near,
            "examples": "\n".join(examples) or "none",
        },
    )


def no_leakage(
    train: list[dict[str, Any]], heldout: list[dict[str, Any]], dedupe: DedupeSection
) -> CheckOutcome:
    """No held-out row has an exact or near-duplicate, or a group key, in training."""
    train_ids = {r["id"] for r in train}
    exact = [r for r in heldout if r["id"] in train_ids]
    train_groups = {g for r in train for g in r.get("groups", [])}
    grouped = [r for r in heldout if set(r.get("groups", [])) & train_groups]
    both = heldout + train
    sig = row_signatures(both, [r["id"] for r in both], dedupe, _dedupe_text)
    pairs = near_duplicates.cross_pairs(sig[: len(heldout)], sig[len(heldout) :], dedupe.threshold)
    near_rows = np.unique(pairs[:, 0]) if len(pairs) else np.zeros(0, dtype=np.int64)
    leaked = len(
        {r["id"] for r in exact}
        | {r["id"] for r in grouped}
        | {heldout[i]["id"] for i in near_rows}
    )
    examples = [
        f"held-out {heldout[a]['id']} ~ train {train[b]['id']}: "
        f"{_conversation(heldout[a]).dedupe_text()[:80]!r}"
        for a, b in pairs[:EXAMPLES]
    ]
    return CheckOutcome(
        passed=leaked == 0,
        description=(
            f"{leaked} held-out rows leak into training ({len(exact)} exact, "
            f"{len(near_rows)} near-duplicate, {len(grouped)} by group key)"
        ),
        metadata={
            "leaked_rows": leaked,
            "exact": len(exact),
            "near_duplicate": len(near_rows),
            "shared_group": len(grouped),
            "threshold": dedupe.threshold,
            "examples": "\n".join(examples) or "none",
        },
    )


def class_balance(
    train_labels: list[str], heldout_labels: list[str], balance: BalanceSection
) -> CheckOutcome:
    """Majority share of training labels: warn over one threshold, block over another."""
    train_shares, heldout_shares = class_shares(train_labels), class_shares(heldout_labels)
    metadata: dict[str, Any] = {
        "train_shares": {k: round(v, 4) for k, v in train_shares.items()},
        "heldout_shares": {k: round(v, 4) for k, v in heldout_shares.items()},
        "missing_in_heldout": sorted(set(train_shares) - set(heldout_shares)),
    }
    if not train_shares:
        return CheckOutcome(True, "no labels (data.label_field unset)", metadata=metadata)
    label, share = max(train_shares.items(), key=lambda kv: kv[1])
    metadata.update(
        majority_label=label,
        majority_share=round(share, 4),
        warn_over=balance.warn_majority_share,
        block_over=balance.max_majority_share,
    )
    text = f"majority class '{label}' holds {share:.1%} of training rows"
    if share > balance.max_majority_share:
        return CheckOutcome(
            False,
            f"{text}, over data.balance.max_majority_share "
            f"{balance.max_majority_share:.0%} (set data.balance.rebalance)",
            metadata=metadata,
        )
    if share > balance.warn_majority_share:
        return CheckOutcome(
            False,
            f"{text}, over data.balance.warn_majority_share {balance.warn_majority_share:.0%}",
            "WARN",
            metadata,
        )
    if metadata["missing_in_heldout"]:
        return CheckOutcome(
            False,
            f"{text}; classes with no held-out row: {', '.join(metadata['missing_in_heldout'])}",
            "WARN",
            metadata,
        )
    return CheckOutcome(True, text, metadata=metadata)


def heldout_size(heldout_rows: int, minimum: int) -> CheckOutcome:
    return CheckOutcome(
        passed=heldout_rows >= minimum,
        description=(
            f"{heldout_rows} held-out rows (data.min_heldout_rows {minimum}"
            + ("" if heldout_rows >= minimum else "; raise data.heldout_fraction or add rows")
            + ")"
        ),
        metadata={"heldout_rows": heldout_rows, "min_heldout_rows": minimum},
    )


def _training_text(row: dict[str, Any]) -> str:
    """Everything the trainer sees of a row: every turn, and a pair's two answers."""
    texts = [m["content"] for m in row.get("messages", []) if isinstance(m.get("content"), str)]
    texts += [row[k] for k in ("chosen", "rejected") if isinstance(row.get(k), str)]
    return "\n".join(texts)


def probes_disjoint(rows: list[dict[str, Any]], probes: list[Probe]) -> CheckOutcome:
    """No training or rehearsal row gives a forgetting probe away (lib/probes.py
    `probe_overlap`: its question, or its subject together with its answer), or the
    regressions count would measure what the tune was shown, not what it kept."""
    found = find_probe_overlaps(probes, (_training_text(r) for r in rows))
    examples = [
        f"{probe_id} ~ row {rows[i].get('id')}: {' '.join(_training_text(rows[i]).split())[:80]!r}"
        for probe_id, i in list(found.items())[:EXAMPLES]
    ]
    return CheckOutcome(
        passed=not found,
        description=(
            f"{len(found)} of {len(probes)} forgetting probes appear in the {len(rows)} "
            "training rows" + ("; drop those rows, or set eval.probes: false" if found else "")
        ),
        metadata={
            "probes": len(probes),
            "rows": len(rows),
            "overlapping_probes": len(found),
            "probe_ids": ", ".join(found) or "none",
            "examples": "\n".join(examples) or "none",
        },
    )
