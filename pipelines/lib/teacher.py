"""The teacher of a distillation recipe: a LoRA adapter (local or registered) or an
OpenAI-compatible HTTP endpoint. The API key only ever lives in the environment."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pandas as pd

from pipelines.lib.base_model import BaseModelError, resolve_adapter
from pipelines.recipe import DistillSection


class TeacherError(RuntimeError):
    pass


def resolve_teacher(cfg: DistillSection) -> dict[str, Any]:
    """Where the teacher lives, as JSON-ready lineage: kind, id, and its adapter or URL."""
    teacher = cfg.teacher
    if teacher.startswith(("http://", "https://")):
        return {"kind": "http", "id": cfg.teacher_model or teacher, "url": teacher.rstrip("/")}
    try:
        adapter = resolve_adapter(teacher)
    except BaseModelError as exc:
        raise TeacherError(f"train.distill.teacher: {exc} (or give an http(s) endpoint)") from None
    found = {"kind": "adapter", "id": teacher, "adapter_dir": str(adapter.path)}
    if adapter.model_version:
        found.update(model_version=adapter.model_version, source_run_id=adapter.source_run_id)
    return found


WORKERS = 4  # requests in flight at once
MAX_ATTEMPTS = 5  # per conversation, for transient failures
BACKOFF_S = 1.0  # first wait; doubles each retry unless the server says (Retry-After)
MAX_WAIT_S = 60.0
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
TRANSIENT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def _headers(cfg: DistillSection) -> tuple[dict[str, str], str | None]:
    headers = {"Content-Type": "application/json"}
    if not cfg.api_key_env:
        return headers, None
    key = os.environ.get(cfg.api_key_env)
    if not key:
        raise TeacherError(f"train.distill.api_key_env: ${cfg.api_key_env} is not set")
    headers["Authorization"] = f"Bearer {key}"
    return headers, key


def _retry_after(response: httpx.Response) -> float | None:
    """The server's Retry-After, in seconds (delay-seconds or an HTTP date)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _ask_one(
    client: httpx.Client,
    url: str,
    body: dict[str, Any],
    where: str,
    stop: threading.Event,
    secret: str | None,
) -> str:
    """One chat completion, retried on transient failures with exponential backoff."""

    def fail(reason: str) -> TeacherError:
        endpoint = url.removesuffix("/chat/completions")  # as train.distill.teacher names it
        message = f"teacher endpoint {endpoint} failed on {where}: {reason}"
        return TeacherError(message.replace(secret, "***") if secret else message)

    for attempt in range(1, MAX_ATTEMPTS + 1):
        if stop.is_set():
            raise fail("cancelled after another request failed")
        delay = BACKOFF_S * 2 ** (attempt - 1)
        try:
            response = client.post(url, json=body)
        except TRANSIENT_ERRORS as exc:
            reason = f"{type(exc).__name__}: {exc}"
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # retrying will not help
            raise fail(f"{type(exc).__name__}: {exc}") from None
        else:
            if response.is_success:
                try:
                    return response.json()["choices"][0]["message"]["content"].strip()
                except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                    raise fail(f"not an OpenAI chat completion: {response.text[:300]!r}") from None
            reason = f"HTTP {response.status_code}: {response.text[:300]}"
            if response.status_code not in RETRY_STATUSES:
                raise fail(reason)
            asked = _retry_after(response)
            delay = delay if asked is None else asked
        if attempt < MAX_ATTEMPTS:
            stop.wait(min(delay, MAX_WAIT_S))
    raise fail(f"gave up after {MAX_ATTEMPTS} attempts; last: {reason}")


def _ask_all(
    cfg: DistillSection,
    conversations: list[list[dict]],
    names: list[str],
    timeout_s: float,
    progress: Callable[[int, int], None] | None = None,
) -> list[str]:
    headers, secret = _headers(cfg)
    url = cfg.teacher.rstrip("/") + "/chat/completions"
    stop = threading.Event()
    limits = httpx.Limits(max_connections=WORKERS)
    with (
        httpx.Client(headers=headers, timeout=timeout_s, limits=limits) as client,
        ThreadPoolExecutor(WORKERS, thread_name_prefix="teacher") as pool,
    ):
        futures = [
            pool.submit(
                _ask_one,
                client,
                url,
                {
                    "model": cfg.teacher_model or "teacher",
                    "messages": messages,
                    "max_tokens": cfg.max_new_tokens,
                    "temperature": cfg.temperature,
                },
                name,
                stop,
                secret,
            )
            for messages, name in zip(conversations, names, strict=True)
        ]
        try:
            for done, future in enumerate(as_completed(futures), start=1):
                future.result()  # the first failure stops the others (below)
                if progress is not None:
                    progress(done, len(futures))
            return [future.result() for future in futures]
        except BaseException:
            stop.set()  # the others give up instead of retrying
            for future in futures:
                future.cancel()
            raise


def ask_http_teacher(
    cfg: DistillSection,
    conversations: list[list[dict]],
    timeout_s: float = 120,
    progress: Callable[[int, int], None] | None = None,
) -> list[str]:
    """One chat completion per conversation from an OpenAI-compatible endpoint, in order:
    a few requests at a time, transient failures (connection errors, 429, 5xx) retried
    with exponential backoff that honours Retry-After. `progress(done, total)` is called
    in the caller's thread as each answer arrives, e.g. `lambda done, total:
    ticker.update(done)` with a pipelines.worker.progress.ProgressTicker."""
    names = [f"conversation {i + 1} of {len(conversations)}" for i in range(len(conversations))]
    return _ask_all(cfg, conversations, names, timeout_s, progress)


def ask_http_teacher_rows(
    cfg: DistillSection, frame: pd.DataFrame, candidate: str
) -> dict[str, str]:
    """Held-out answers of an HTTP teacher, keyed like the evaluation's requests."""
    questions = [messages[:-1] for messages in frame["messages"]]
    answers = _ask_all(cfg, questions, [f"row {key}" for key in frame["id"]], timeout_s=120)
    return {f"{candidate}|heldout|{key}": a for key, a in zip(frame["id"], answers)}
