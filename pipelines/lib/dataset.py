"""Data stages as plain functions: raw rows -> cleaned conversations -> split.

Rows that cannot be used are never dropped silently: they go to a quarantine
table with their source file, line number and reason, and the counts reconcile
(rows in = kept + quarantined + duplicates removed).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipelines.recipe import DataSection

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\u00a0]+")


def normalize_text(text: str) -> str:
    """NFC, no control characters, single spaces, trimmed."""
    text = _CONTROL.sub("", unicodedata.normalize("NFC", text))
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.strip().splitlines())


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unit_hash(seed: int, key: str) -> float:
    """A stable pseudo-random number in [0, 1) for a row: same seed and key, same number."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def read_jsonl_sources(sources: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parse JSONL files; returns (rows, quarantine). Rows keep source and line."""
    rows, bad = [], []
    for source in sources:
        with source.open("rb") as handle:
            for line_no, raw in enumerate(handle, start=1):
                where = {"source": str(source), "line": line_no}
                try:
                    record = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    bad.append({**where, "reason": "invalid UTF-8 encoding"})
                    continue
                except json.JSONDecodeError as exc:
                    if raw.strip():
                        bad.append({**where, "reason": f"invalid JSON: {exc.msg}"})
                    continue
                if not isinstance(record, dict):
                    bad.append({**where, "reason": "row is not a JSON object"})
                    continue
                rows.append({**where, "record": record})
    columns = ["source", "line", "reason"]
    return pd.DataFrame(rows, columns=["source", "line", "record"]), pd.DataFrame(bad, columns=columns)


def _as_text(value: object) -> str | None:
    if isinstance(value, str):
        return normalize_text(value)
    if isinstance(value, dict):
        cleaned = {k: normalize_text(v) if isinstance(v, str) else v for k, v in value.items()}
        return json.dumps(cleaned, ensure_ascii=False, separators=(", ", ": "))
    return None


@dataclass(frozen=True)
class CleanResult:
    rows: pd.DataFrame  # columns: id, prompt, completion, messages
    quarantine: pd.DataFrame  # columns: source, line, reason
    rows_in: int
    duplicates_removed: int
    sampled_out: int


def to_conversation(prompt: str, completion: str, data: DataSection) -> list[dict]:
    messages = [{"role": "system", "content": data.system_prompt}] if data.system_prompt else []
    user = data.prompt_template.replace("{prompt}", prompt)
    return [*messages, {"role": "user", "content": user}, {"role": "assistant", "content": completion}]


def clean_rows(parsed: pd.DataFrame, quarantine: pd.DataFrame, data: DataSection) -> CleanResult:
    """Map raw rows to normalized conversations, quarantine bad ones, drop exact duplicates."""
    kept, bad = [], list(quarantine.to_dict("records"))
    for row in parsed.itertuples(index=False):
        where = {"source": row.source, "line": row.line}
        missing = [f for f in (data.fields.prompt, data.fields.completion) if f not in row.record]
        if missing:
            bad.append({**where, "reason": f"missing field: {', '.join(missing)}"})
            continue
        prompt = _as_text(row.record[data.fields.prompt])
        completion = _as_text(row.record[data.fields.completion])
        if prompt is None or completion is None:
            bad.append({**where, "reason": "wrong type: prompt and completion must be text or object"})
            continue
        if not prompt or completion in ("", "{}"):
            bad.append({**where, "reason": "empty or whitespace-only content"})
            continue
        # The id is the normalized prompt's hash: stable when rows are added or reordered.
        row_id = hashlib.sha256(prompt.encode()).hexdigest()[:16]
        kept.append({"id": row_id, "prompt": prompt, "completion": completion})

    frame = pd.DataFrame(kept, columns=["id", "prompt", "completion"])
    before = len(frame)
    frame = frame.drop_duplicates(subset="id", keep="first")
    duplicates = before - len(frame)

    sampled_out = 0
    if data.max_rows is not None and len(frame) > data.max_rows:
        order = frame["id"].map(lambda key: unit_hash(data.seed, "sample:" + key))
        frame = frame.loc[order.sort_values(kind="stable").index[: data.max_rows]]
        sampled_out = before - duplicates - len(frame)

    frame = frame.sort_values("id", kind="stable").reset_index(drop=True)
    frame["messages"] = [to_conversation(p, c, data) for p, c in zip(frame.prompt, frame.completion)]
    return CleanResult(
        rows=frame,
        quarantine=pd.DataFrame(bad, columns=["source", "line", "reason"]),
        rows_in=len(parsed) + len(quarantine),
        duplicates_removed=duplicates,
        sampled_out=sampled_out,
    )


def split_rows(rows: pd.DataFrame, data: DataSection) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hash-based held-out assignment: a row's side depends only on its id and the seed,
    so held-out rows never migrate into training when the dataset grows."""
    heldout_mask = rows["id"].map(lambda key: unit_hash(data.seed, "split:" + key)) < (
        data.heldout_fraction
    )
    return rows[~heldout_mask].reset_index(drop=True), rows[heldout_mask].reset_index(drop=True)


def write_conversations(rows: pd.DataFrame, path: Path) -> str:
    """Write {"id", "messages"} JSON lines; returns the file's sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for row in rows.itertuples(index=False):
            out.write(json.dumps({"id": row.id, "messages": row.messages}, ensure_ascii=False) + "\n")
    return sha256_file(path)


def read_conversations(path: Path) -> pd.DataFrame:
    return pd.read_json(path, lines=True, dtype={"id": str})
