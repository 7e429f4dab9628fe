"""Read raw source files (JSONL, CSV, Parquet) as records with their file and line.

Every physical row comes out exactly once: as a record (a dict) or as a
`BadRow` with the reason it could not be read (encoding, JSON), so the counts of
the cleaning stage reconcile. CSV rows are numbered by the file line they start
on (the header is line 1); Parquet rows by their position, from 1.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUFFIXES = (".jsonl", ".csv", ".parquet")


class SourceError(ValueError):
    """A source file that cannot be read at all (unknown type, no header)."""


@dataclass(frozen=True, slots=True)
class RawRow:
    line: int
    record: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    reason: str


def read_source(path: Path) -> Iterator[RawRow | BadRow]:
    """Records of one file, in file order."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(path)
    if suffix == ".csv":
        return _read_csv(path)
    if suffix == ".parquet":
        return _read_parquet(path)
    raise SourceError(f"{path}: unsupported file type '{suffix}' (use {', '.join(SUFFIXES)})")


def _read_jsonl(path: Path) -> Iterator[RawRow | BadRow]:
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield BadRow(
                    line_no,
                    f"invalid encoding: not UTF-8 (byte {raw[exc.start]:#04x} "
                    f"at column {exc.start + 1})",
                )
                continue
            if not text.strip():
                continue  # blank lines are layout, not rows
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                yield BadRow(line_no, f"invalid JSON: {exc.msg} at column {exc.colno}")
                continue
            except RecursionError:  # e.g. 100,000 nested brackets: the row's fault, not ours
                yield BadRow(line_no, "invalid JSON: nested too deeply")
                continue
            if not isinstance(record, dict):
                yield BadRow(
                    line_no,
                    f"wrong type: the row is a JSON {type(record).__name__}, expected an object",
                )
                continue
            yield RawRow(line_no, record)


def _read_csv(path: Path) -> Iterator[RawRow | BadRow]:
    # Undecodable bytes survive as surrogates, so one bad row does not sink the file.
    text = path.read_bytes().decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise SourceError(f"{path}: empty CSV file (a header row is required)") from None
    start = reader.line_num + 1
    for cells in reader:
        line_no, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in cells):
            continue
        if any(_has_surrogate(cell) for cell in cells):
            yield BadRow(line_no, "invalid encoding: not UTF-8")
            continue
        if len(cells) != len(header):
            yield BadRow(line_no, f"wrong type: {len(cells)} cells, the header has {len(header)}")
            continue
        yield RawRow(line_no, dict(zip(header, cells, strict=True)))


def _has_surrogate(text: str) -> bool:
    return not text.isascii() and any("\udc80" <= ch <= "\udcff" for ch in text)


def _read_parquet(path: Path) -> Iterator[RawRow | BadRow]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    for index, record in enumerate(table.to_pylist(), start=1):
        yield RawRow(index, record)


def count_rows(path: Path) -> int:
    """Physical rows of a source (non-blank lines; CSV records; Parquet rows)."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    return sum(1 for _ in read_source(path))
