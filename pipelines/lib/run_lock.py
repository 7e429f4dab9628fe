"""One launch of a recipe at a time.

Two launches of the same recipe would train into the same partition, race on its cache
entries and register two versions from one idea. A launch holds an exclusive `flock` on
`<state>/locks/<recipe id>.lock` for as long as it runs; a second launch is refused at
once (never queued) with the holder's pid and Dagster run id. The kernel drops the lock
when its process ends, however it ends, so a killed run never leaves a stale lock; the
file's contents only say who holds it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipelines import paths
from pipelines.recipe import RecipeError


class RecipeBusy(RecipeError):
    """Another launch of the same recipe is running."""


def lock_file(recipe_id: str) -> Path:
    return paths.state_dir() / "locks" / f"{recipe_id}.lock"


def _holder(fd: int) -> str:
    """Who holds the lock, as its file says (written right after it was taken)."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        holder = {}
    if not isinstance(holder, dict) or "pid" not in holder:
        return "another process (it has not written its pid yet)"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started_at", 0)))
    run = holder.get("dagster_run_id") or "not known yet"
    return f"pid {holder['pid']} on {holder.get('host', '?')}, Dagster run {run}, since {since}"


@contextmanager
def recipe_lock(recipe_id: str, dagster_run_id: str | None = None) -> Iterator[Path]:
    """Hold the recipe's launch lock for the duration of the block; raise RecipeBusy,
    naming the recipe and the holder, when another launch holds it."""
    path = lock_file(recipe_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RecipeBusy(
                f"recipe '{recipe_id}' is already being launched by {_holder(fd)}; wait for "
                f"that run to finish (or stop it), then launch again (lock: {path})"
            ) from None
        holder = {
            "recipe_id": recipe_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "dagster_run_id": dagster_run_id,
            "started_at": time.time(),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
