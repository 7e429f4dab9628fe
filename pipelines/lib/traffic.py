"""The traffic log: every answered request of `rung serve`, one JSON line each.

Written by the model server (trainer env) and read by `rung monitor` (orchestrator), so
this module imports nothing but the standard library. One folder per served model
under `paths.traffic_dir()`: `<name>/traffic.jsonl`, rotated like a log file when it
grows past `max_bytes` (`traffic.jsonl.1` is the newest rotated file, up to `keep` of
them), so the log never holds more than (keep + 1) x max_bytes. With `max_bytes=0`
nothing is ever rotated or deleted (unbounded).

A record holds what was asked and answered and what it cost: time, model (adapter)
name, registered version, the input messages, the output, latency and token counts (and,
for a shadow copy, `shadow_of`: the model whose request it copies).
Never HTTP headers, client addresses or API keys: the server hands over only these
fields, and `traffic_record` builds the record from named arguments.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOG_FILE = "traffic.jsonl"
DEFAULT_MAX_MB = 64.0
DEFAULT_KEEP = 3


def traffic_record(
    *,
    model: str,
    version: str | None,
    messages: list[dict[str, str]],
    output: str,
    latency_s: float,
    prompt_tokens: int,
    new_tokens: int,
    finish_reason: str,
    request_id: str,
    time: datetime | None = None,
    shadow_of: str | None = None,
) -> dict[str, Any]:
    """One answered request as it is logged (no other field ever reaches the log). A shadow
    copy (the same request answered by a challenger) names the model it shadows."""
    record = {
        "time": (time or datetime.now(UTC)).isoformat(timespec="milliseconds"),
        "model": model,
        "version": version,
        "request_id": request_id,
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        "output": output,
        "latency_s": round(latency_s, 4),
        "prompt_tokens": prompt_tokens,
        "new_tokens": new_tokens,
        "finish_reason": finish_reason,
    }
    return record if shadow_of is None else {**record, "shadow_of": shadow_of}


class TrafficLog:
    """Append-only JSONL per model with size-bounded rotation; safe across threads."""

    def __init__(
        self, folder: Path, max_bytes: int = int(DEFAULT_MAX_MB * 2**20), keep: int = DEFAULT_KEEP
    ) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.keep = keep
        self._lock = threading.Lock()

    def file_for(self, model: str) -> Path:
        return self.folder / _safe_name(model) / LOG_FILE

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        file = self.file_for(record["model"])
        with self._lock:
            file.parent.mkdir(parents=True, exist_ok=True)
            if (
                self.max_bytes
                and file.exists()
                and file.stat().st_size + len(line) > self.max_bytes
            ):
                self._rotate(file)
            with file.open("ab") as handle:
                handle.write(line)

    def _rotate(self, file: Path) -> None:
        """traffic.jsonl -> .1 -> .2 ... ; the oldest beyond `keep` is deleted."""
        for index in range(self.keep, 0, -1):
            older = file.with_name(f"{file.name}.{index}")
            if not older.exists():
                continue
            if index == self.keep:
                older.unlink()
            else:
                older.replace(file.with_name(f"{file.name}.{index + 1}"))
        if self.keep:
            file.replace(file.with_name(f"{file.name}.1"))
        else:
            file.unlink()


def _safe_name(model: str) -> str:
    """A model name as a folder name (registered names are already safe; slashes are not)."""
    return "".join(c if c.isalnum() or c in "-_.@" else "_" for c in model) or "_"


def log_files(folder: Path, model: str) -> list[Path]:
    """A model's log files, oldest first."""
    current = Path(folder) / _safe_name(model) / LOG_FILE
    rotated = sorted(
        current.parent.glob(f"{LOG_FILE}.*"),
        key=lambda p: int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0,
        reverse=True,
    )
    return [p for p in [*rotated, current] if p.is_file()]


def read_traffic(
    folder: Path,
    model: str,
    version: str | None = None,
    since: datetime | None = None,
    last: int | None = None,
) -> list[dict[str, Any]]:
    """A model's logged requests, oldest first: of one registered `version` (None: all), at
    or after `since`, the `last` N. A torn last line (the server stopped mid-write) is skipped."""
    rows = []
    for record in _records(log_files(folder, model)):
        if version is not None and str(record.get("version")) != str(version):
            continue
        if since is not None and datetime.fromisoformat(record["time"]) < since:
            continue
        rows.append(record)
    return rows[-last:] if last else rows


def _records(files: list[Path]) -> Iterator[dict[str, Any]]:
    for file in files:
        with file.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue


def shadow_copies(folder: Path, live: str) -> list[dict[str, Any]]:
    """Every logged shadow copy of `live`'s requests, under whichever model answered it."""
    models = sorted(p.parent.name for p in Path(folder).glob(f"*/{LOG_FILE}"))
    files = [file for model in models for file in log_files(folder, model)]
    return [r for r in _records(files) if r.get("shadow_of") == live]


def user_text(messages: list[dict[str, str]]) -> str:
    """The input a monitor compares: the last user message (what the evaluation's
    predictions call `prompt`)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return ""
