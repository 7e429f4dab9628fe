"""The teacher of a distillation recipe: a LoRA adapter (local or registered) or an
OpenAI-compatible HTTP endpoint. The API key only ever lives in the environment."""

from __future__ import annotations

import json
import os
import urllib.request
from typing import Any

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


def ask_http_teacher(
    cfg: DistillSection, conversations: list[list[dict]], timeout_s: float = 120
) -> list[str]:
    """One chat completion per conversation from an OpenAI-compatible endpoint."""
    headers = {"Content-Type": "application/json"}
    if cfg.api_key_env:
        key = os.environ.get(cfg.api_key_env)
        if not key:
            raise TeacherError(f"train.distill.api_key_env: ${cfg.api_key_env} is not set")
        headers["Authorization"] = f"Bearer {key}"
    answers = []
    for messages in conversations:
        body = {
            "model": cfg.teacher_model or "teacher",
            "messages": messages,
            "max_tokens": cfg.max_new_tokens,
            "temperature": cfg.temperature,
        }
        request = urllib.request.Request(
            cfg.teacher.rstrip("/") + "/chat/completions",
            data=json.dumps(body).encode(),
            headers=headers,
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                payload = json.load(response)
        except OSError as exc:  # the URL is safe to show; the key is only in the header
            raise TeacherError(f"teacher endpoint {cfg.teacher} failed: {exc}") from None
        answers.append(payload["choices"][0]["message"]["content"].strip())
    return answers


def ask_http_teacher_rows(
    cfg: DistillSection, frame: pd.DataFrame, candidate: str
) -> dict[str, str]:
    """Held-out answers of an HTTP teacher, keyed like the evaluation's requests."""
    questions = [messages[:-1] for messages in frame["messages"]]
    answers = ask_http_teacher(cfg, questions)
    return {f"{candidate}|heldout|{key}": a for key, a in zip(frame["id"], answers)}
