"""One registration of a registered model at a time, for every process that shares it.

Registering reads the registry (is there a model? which version is champion? how many
alias moves are recorded?) and then writes it. Two registrations interleaving there
would both promote against the same old champion (the later one displacing a champion
it was never compared with), or number two alias moves alike so that one overwrites the
other. MLflow has no compare-and-set, so that read-then-write section runs under a lock:

- shared profile (RUNG_DAGSTER_PG_URL set): a PostgreSQL advisory lock in the team's
  Dagster database, so users on different machines wait for each other. It belongs to
  the database session: a killed process releases it.
- embedded profile: an `flock` on `<state>/locks/registry-<name>.lock`, which every
  process of this checkout sees; the kernel releases it when its process ends.

With an MLflow server but no shared Dagster database, only registrations sharing a state
folder are serialized (README, "Running as a team"). The lock is not re-entrant: one
registration takes it once.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from pipelines import paths
from pipelines.lib import state_profile

logger = logging.getLogger(__name__)
WAIT_ENV = "RUNG_REGISTRY_LOCK_WAIT_S"
DEFAULT_WAIT_S = 600.0


class RegistryBusy(RuntimeError):
    """Another registration held the registered model's lock for the whole wait."""


def _wait_s() -> float:
    return float(os.environ.get(WAIT_ENV, DEFAULT_WAIT_S))


def _poll(try_lock, name: str, where: str) -> None:
    """Call try_lock() every 0.2 s until it returns True or the wait is over."""
    wait = _wait_s()
    deadline = time.monotonic() + wait
    while not try_lock():
        if time.monotonic() > deadline:
            raise RegistryBusy(
                f"registered model '{name}': another registration held its lock ({where}) "
                f"for {wait:g} s ({WAIT_ENV}); try again when it has finished"
            )
        time.sleep(0.2)


def advisory_key(name: str) -> int:
    """A signed 64-bit key for pg_advisory_lock, stable across processes and machines."""
    digest = hashlib.sha256(f"rung.registry:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def _postgres_lock(name: str, url: str) -> Iterator[None]:
    import psycopg2
    from sqlalchemy.engine import make_url

    parsed = make_url(url)  # the same reading of the URL as Dagster's
    connection = psycopg2.connect(
        **parsed.translate_connect_args(username="user", database="dbname"),
        **parsed.query,
        connect_timeout=10,
        # a holder whose machine vanished loses the lock in about a minute, not hours
        keepalives=1,
        keepalives_idle=30,
        keepalives_interval=10,
        keepalives_count=3,
    )
    connection.autocommit = True
    key = advisory_key(name)
    try:
        with connection.cursor() as cursor:

            def try_lock() -> bool:
                cursor.execute("select pg_try_advisory_lock(%s)", (key,))
                return bool(cursor.fetchone()[0])

            _poll(try_lock, name, f"PostgreSQL advisory lock {key}")
            try:
                yield
            finally:
                try:
                    cursor.execute("select pg_advisory_unlock(%s)", (key,))
                except psycopg2.Error as exc:  # the session is gone, and its lock with it
                    logger.warning("registry lock %s: unlock failed (%s)", key, exc)
    finally:
        connection.close()


@contextmanager
def _file_lock(name: str) -> Iterator[None]:
    path = paths.state_dir() / "locks" / f"registry-{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def try_lock() -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    try:
        _poll(try_lock, name, str(path))
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def registry_lock(name: str) -> Iterator[None]:
    """Hold the registered model's lock for the block (waiting up to RUNG_REGISTRY_LOCK_WAIT_S)."""
    url = state_profile.dagster_pg_url()
    with _postgres_lock(name, url) if url else _file_lock(name):
        yield
