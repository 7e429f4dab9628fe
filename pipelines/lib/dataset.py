"""Data stages as plain functions: raw files -> cleaned conversations -> split.

Nothing is dropped silently. Bad rows go to the quarantine with their source
file, line number and reason; duplicates, near-duplicates and rows too long for
training are recorded as dropped with what replaced them or how long they were;
the counts reconcile:

    rows in = kept + quarantined + exact duplicates + near-duplicates + too long
              + sampled out (data.max_rows, data.skip_rows)
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from pipelines.lib import near_duplicates, splitting
from pipelines.lib.conversations import (
    Conversation,
    RowRejected,
    group_keys,
    normalize_text,
    raw_label,
    to_conversation,
)
from pipelines.lib.hashing import sha256_file
from pipelines.lib.raw_sources import BadRow, read_source
from pipelines.lib.splitting import unit_hash
from pipelines.recipe import DataSection, DedupeSection

__all__ = ["normalize_text", "unit_hash", "clean_sources", "split_rows", "sha256_file"]


@dataclass(slots=True)
class CleanRow:
    id: str  # hash of the normalized content
    conversation: Conversation
    source: str
    line: int
    label: str | None = None
    groups: tuple[str, ...] = ()
    tokens: int | None = None
    near_dup_ids: tuple[str, ...] = ()  # rows this one replaced as their cluster's representative
    passage: str | None = None  # the row's source passage id (data.passage_field)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "messages": self.conversation.messages_json()}
        if self.conversation.chosen is not None:
            out["chosen"] = self.conversation.chosen
            out["rejected"] = self.conversation.rejected
        if self.label is not None:
            out["label"] = self.label
        if self.passage is not None:
            out["passage"] = self.passage
        if self.groups:
            out["groups"] = list(self.groups)
        if self.near_dup_ids:
            out["near_dup_ids"] = list(self.near_dup_ids)
        out.update(source=self.source, line=self.line)
        if self.tokens is not None:
            out["tokens"] = self.tokens
        return out


@dataclass
class CleanResult:
    rows: list[CleanRow]
    quarantine: list[dict[str, Any]]  # source, line, reason
    dropped: list[dict[str, Any]]  # source, line, stage, detail: duplicates and too-long rows
    rows_in: int
    sampled_out: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        stages = Counter(d["stage"] for d in self.dropped)
        return {
            "rows_in": self.rows_in,
            "kept": len(self.rows),
            "quarantined": len(self.quarantine),
            "exact_duplicates": stages["exact_duplicate"],
            "near_duplicates": stages["near_duplicate"],
            "too_long": stages["too_long"],
            "sampled_out": self.sampled_out,
        }

    def reconciles(self) -> bool:
        c = self.counts
        return c["rows_in"] == sum(v for k, v in c.items() if k != "rows_in")

    def drop_reasons(self) -> dict[str, int]:
        """Count per reason class ('invalid JSON', 'too long', ...), for the data card."""
        reasons = Counter(q["reason"].split(":")[0] for q in self.quarantine)
        reasons.update(d["stage"].replace("_", " ") for d in self.dropped)
        if self.sampled_out:
            reasons["sampled out (max_rows, skip_rows)"] = self.sampled_out
        return dict(reasons.most_common())

    def failure(self, max_bad_fraction: float) -> str | None:
        """Why this result must not go on to training, or None."""
        c = self.counts
        if c["rows_in"] and c["quarantined"] / c["rows_in"] > max_bad_fraction:
            top = Counter(q["reason"].split(":")[0] for q in self.quarantine).most_common(3)
            first = self.quarantine[0]
            return (
                f"{c['quarantined']} of {c['rows_in']} rows "
                f"({c['quarantined'] / c['rows_in']:.1%}) are bad, over data.max_bad_fraction "
                f"{max_bad_fraction:.1%}; most common: "
                + ", ".join(f"{reason} ({n})" for reason, n in top)
                + f"; first: {first['source']} line {first['line']}: {first['reason']}"
            )
        if not self.rows:
            return f"no usable rows left after cleaning: {c}"
        return None


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start


def validate_rows(
    sources: list[Path], data: DataSection, names: list[str] | None = None
) -> tuple[list[CleanRow], list[dict[str, Any]], int]:
    """Parse and validate every source row: (valid rows, quarantine, rows in)."""
    names = names or [str(s) for s in sources]
    rows: list[CleanRow] = []
    bad: list[dict[str, Any]] = []
    rows_in = 0
    for source, name in zip(sources, names, strict=True):
        for raw in read_source(source):
            rows_in += 1
            if isinstance(raw, BadRow):
                bad.append({"source": name, "line": raw.line, "reason": raw.reason})
                continue
            try:
                conversation = to_conversation(raw.record, data)
                label = raw_label(raw.record, data.label_field) if data.label_field else None
                passage = (
                    raw_label(raw.record, data.passage_field, "data.passage_field")
                    if data.passage_field
                    else None
                )
                groups = group_keys(raw.record, data.group_by)
            except RowRejected as exc:
                bad.append({"source": name, "line": raw.line, "reason": str(exc)})
                continue
            except RecursionError:  # a field nested just under json.loads' own limit
                bad.append(
                    {"source": name, "line": raw.line, "reason": "wrong type: nested too deeply"}
                )
                continue
            # the content hash is computed by the exact-dedupe stage
            rows.append(CleanRow("", conversation, name, raw.line, label, groups, passage=passage))
    return rows, bad, rows_in


def drop_exact_duplicates(rows: list[CleanRow]) -> tuple[list[CleanRow], list[dict[str, Any]]]:
    """Keep the first row of each content hash; its group keys absorb the copies'."""
    first: dict[str, CleanRow] = {}
    dropped = []
    for row in rows:
        row.id = row.id or row.conversation.content_id
        kept = first.setdefault(row.id, row)
        if kept is not row:
            if row.groups and not set(row.groups) <= set(kept.groups):
                kept.groups = tuple(sorted(set(kept.groups) | set(row.groups)))
            dropped.append(
                {
                    "source": row.source,
                    "line": row.line,
                    "stage": "exact_duplicate",
                    "detail": f"same content as {kept.source} line {kept.line}",
                }
            )
    return list(first.values()), dropped


def drop_too_long(
    rows: list[CleanRow], count_tokens: Callable[[list[list[dict]]], list[int]], limit: int
) -> tuple[list[CleanRow], list[dict[str, Any]]]:
    """Rows longer than sequence_len would be truncated (their answer cut) or silently
    dropped by the trainer: drop them here, counted, instead."""
    conversations = [r.conversation.training_messages() for r in rows]
    counts = count_tokens(conversations)
    rejected = [r for r in rows if r.conversation.rejected is not None]
    if rejected:  # a preference pair must fit with either answer
        other = count_tokens(
            [
                [
                    *r.conversation.messages_json(),
                    {"role": "assistant", "content": r.conversation.rejected},
                ]
                for r in rejected
            ]
        )
        longest = dict(zip((r.id for r in rejected), other, strict=True))
        counts = [max(n, longest.get(r.id, 0)) for n, r in zip(counts, rows, strict=True)]
    kept, dropped = [], []
    for row, tokens in zip(rows, counts, strict=True):
        row.tokens = tokens
        if tokens > limit:
            dropped.append(
                {
                    "source": row.source,
                    "line": row.line,
                    "stage": "too_long",
                    "detail": f"{tokens} tokens > train.sequence_len {limit}; "
                    "the answer would be cut",
                }
            )
        else:
            kept.append(row)
    return kept, dropped


def minhash_params(dedupe: DedupeSection, seed: int = 1) -> near_duplicates.MinHashParams:
    return near_duplicates.MinHashParams(
        unit=dedupe.shingle_unit,
        size=dedupe.shingle_size,
        num_perm=dedupe.num_perm,
        threshold=dedupe.threshold,
        seed=seed,
    )


def row_signatures(
    items: list[Any], ids: list[str], dedupe: DedupeSection, text_of: Callable[[Any], str]
) -> np.ndarray:
    """MinHash signatures of rows; a row without words falls back to its content hash."""
    fallback = np.array([int(i, 16) for i in ids], dtype=np.uint64)
    return near_duplicates.signatures(items, minhash_params(dedupe), fallback, text_of)


def drop_near_duplicates(
    rows: list[CleanRow], dedupe: DedupeSection
) -> tuple[list[CleanRow], list[dict[str, Any]]]:
    """Keep the first row (source order) of each near-duplicate cluster; it carries the
    others' ids and group keys so the split keeps their content on its side."""
    if len(rows) < 2:
        return rows, []
    sig = row_signatures(
        rows, [r.id for r in rows], dedupe, lambda row: row.conversation.dedupe_text()
    )
    cluster = near_duplicates.cluster_labels(
        len(rows), near_duplicates.similar_pairs(sig, dedupe.threshold)
    )
    kept, dropped = [], []
    for index, row in enumerate(rows):
        head = rows[cluster[index]]
        if head is row:
            kept.append(row)
            continue
        head.near_dup_ids = (*head.near_dup_ids, row.id)
        if row.groups:
            head.groups = tuple(sorted(set(head.groups) | set(row.groups)))
        dropped.append(
            {
                "source": row.source,
                "line": row.line,
                "stage": "near_duplicate",
                "detail": f"near-duplicate of {head.source} line {head.line}",
            }
        )
    return kept, dropped


def sample_rows(
    rows: list[CleanRow], max_rows: int | None, seed: int, skip: int = 0
) -> list[CleanRow]:
    """A deterministic sample: rows `skip` to `skip + max_rows` of the hash order, kept in
    source order. Samples nest (a larger one holds a smaller) and skipping the first n
    rows leaves out exactly the sample of n."""
    if skip == 0 and (max_rows is None or len(rows) <= max_rows):
        return rows
    ranked = sorted(
        range(len(rows)), key=lambda i: splitting.unit_hash(seed, "sample:" + rows[i].id)
    )
    end = None if max_rows is None else skip + max_rows
    return [rows[i] for i in sorted(ranked[skip:end])]


def clean_sources(
    sources: list[Path],
    data: DataSection,
    *,
    count_tokens: Callable[[list[list[dict]]], list[int]] | None,
    sequence_len: int,
    names: list[str] | None = None,
) -> CleanResult:
    """The whole cleaning stage. `count_tokens` is the trainer's tokenizer and chat
    template (token_length.ChatTokenCounter.count); None skips the length stage."""
    timings: dict[str, float] = {}
    with _timed(timings, "validate"):
        rows, quarantine, rows_in = validate_rows(sources, data, names)
    with _timed(timings, "exact_dedupe"):
        rows, dropped = drop_exact_duplicates(rows)
    if count_tokens is not None:
        with _timed(timings, "length"):
            rows, too_long = drop_too_long(rows, count_tokens, sequence_len)
        dropped += too_long
    if data.dedupe.near:
        with _timed(timings, "near_dedupe"):
            rows, near = drop_near_duplicates(rows, data.dedupe)
        dropped += near
    sampled = sample_rows(rows, data.max_rows, data.seed, data.skip_rows)
    return CleanResult(sampled, quarantine, dropped, rows_in, len(rows) - len(sampled), timings)


@dataclass(frozen=True)
class Split:
    train: list[dict[str, Any]]
    heldout: list[dict[str, Any]]
    rebalanced: splitting.Rebalanced | None = None


def split_rows(rows: list[dict[str, Any]], data: DataSection) -> Split:
    """Rows from the cleaned file -> train and held-out (see pipelines/lib/splitting.py).
    Rebalancing (data.balance.rebalance) touches training rows only."""
    groups = [r.get("groups", []) for r in rows]
    anchors = [
        splitting.row_anchors(r["id"], r.get("near_dup_ids", []), g)
        for r, g in zip(rows, groups, strict=True)
    ]
    held = splitting.heldout_mask(anchors, groups, data.heldout_fraction, data.seed)
    train = [r for r, h in zip(rows, held, strict=True) if not h]
    heldout = [r for r, h in zip(rows, held, strict=True) if h]
    if data.label_field and data.balance.rebalance != "none":
        result = splitting.rebalance(
            [r["label"] for r in train], [r["id"] for r in train], data.balance.rebalance, data.seed
        )
        return Split([train[i] for i in result.indices], heldout, result)
    return Split(train, heldout)


def training_record(row: dict[str, Any]) -> dict[str, Any]:
    """What train and held-out files hold: id, messages, and label / answers when present."""
    keys = ("id", "messages", "chosen", "rejected", "label", "passage")
    return {k: row[k] for k in keys if k in row}


# numpy scalars (from pandas) serialize as the Python numbers they stand for
_JSONL_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> str:
    """Write JSON lines byte-for-byte reproducibly (orjson: compact, UTF-8, keys in the
    rows' order); returns the file's sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for row in rows:
            out.write(orjson.dumps(row, option=_JSONL_OPTIONS))
    return sha256_file(path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open("rb") as handle:
        return [orjson.loads(line) for line in handle if line.strip()]


def read_conversations(path: Path) -> pd.DataFrame:
    """A train or held-out file as a table (id, messages, and label when labelled)."""
    return pd.read_json(path, lines=True, dtype={"id": str, "label": str, "passage": str})


def write_clean_outputs(result: CleanResult, folder: Path) -> dict[str, Any]:
    """cleaned.jsonl (the one schema), quarantine.jsonl and dropped.jsonl; the asset value."""
    cleaned = folder / "cleaned.jsonl"
    sha = write_jsonl([row.to_json() for row in result.rows], cleaned)
    write_jsonl(result.quarantine, folder / "quarantine.jsonl")
    write_jsonl(result.dropped, folder / "dropped.jsonl")
    return {
        "file": str(cleaned),
        "sha256": sha,
        "quarantine_file": str(folder / "quarantine.jsonl"),
        "dropped_file": str(folder / "dropped.jsonl"),
        "counts": result.counts,
        "drop_reasons": result.drop_reasons(),
        "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
    }


def write_split(split: Split, folder: Path) -> dict[str, Any]:
    """train.jsonl and heldout.jsonl (id, messages, label); the asset value's file keys."""
    value: dict[str, Any] = {
        "train_file": str(folder / "train.jsonl"),
        "heldout_file": str(folder / "heldout.jsonl"),
        "train_rows": len(split.train),
        "heldout_rows": len(split.heldout),
    }
    value["train_sha256"] = write_jsonl(
        [training_record(r) for r in split.train], Path(value["train_file"])
    )
    value["heldout_sha256"] = write_jsonl(
        [training_record(r) for r in split.heldout], Path(value["heldout_file"])
    )
    if split.rebalanced is not None:
        value["rebalanced"] = {"removed": split.rebalanced.removed, "added": split.rebalanced.added}
    return value
