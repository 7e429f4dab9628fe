"""Several processes registering versions of one model at the same moment, and what the
registry must look like afterwards. Used by tests/test_registry.py (embedded store) and
tests/test_shared_stack.py (MLflow server on PostgreSQL).

Run as a script, it is one such process: it waits for the shared start time, registers
one stand-in adapter (tests/test_registry.py's `register`) and prints the outcome as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def register_at_once(folder: Path, name: str, scores: list[float], evaluated: dict) -> list[dict]:
    """One process per score, all registering at the same moment; their outcomes."""
    start_at = time.time() + 8  # every process has imported MLflow by then
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent)])}
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, str(folder / f"w{i}"), name, str(score)]
            + [json.dumps(evaluated), str(start_at)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, score in enumerate(scores)
    ]
    from pipelines.lib.registry_lock import registry_lock

    # hold the model's lock until every worker has logged its model and waits for it: the
    # registrations then contend for the lock, however slowly the workers started
    with registry_lock(name):
        time.sleep(max(0.0, start_at + 12 - time.time()))
    outcomes = []
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, f"a registration failed:\n{err[-3000:]}"
        outcomes.append(json.loads(out.strip().splitlines()[-1]))
    return outcomes


def assert_consistent(name: str, outcomes: list[dict], first_version: int) -> None:
    """One new version per process, numbered without gaps; every alias move recorded once,
    each from the version the alias was on; `challenger` on the newest version; among
    registrations evaluated against the same champion, at most one promoted."""
    from pipelines.lib import aliases, tracking

    versions = sorted(int(o["version"]) for o in outcomes)
    assert versions == list(range(first_version, first_version + len(outcomes)))
    assert all(o["created"] for o in outcomes)
    client = tracking.configure_mlflow()
    for o in outcomes:  # one version per run
        found = client.search_model_versions(f"name = '{name}' and run_id = '{o['run_id']}'")
        assert [str(v.version) for v in found] == [o["version"]]

    history = aliases.alias_history(name)
    moved = sum(len(o["moves"]) for o in outcomes)
    assert len(history) == moved + 2 * (first_version > 1), "an alias move was overwritten"
    for alias in (aliases.CHALLENGER, aliases.CHAMPION):
        chain = [m for m in history if m.alias == alias]
        for before, after in zip(chain, chain[1:], strict=False):
            assert after.previous == before.version, f"{alias} moved from a stale version"
        now = client.get_model_version_by_alias(name, alias)
        assert str(now.version) == chain[-1].version
    assert str(client.get_model_version_by_alias(name, aliases.CHALLENGER).version) == str(
        versions[-1]
    )
    promoted = [o for o in outcomes if "champion" in o["moves"]]
    champion_moves = [m for m in history if m.alias == aliases.CHAMPION]
    assert len(champion_moves) == len(promoted) + (first_version > 1)
    assert len(promoted) <= 1, f"{len(promoted)} versions promoted over the same champion"


def _worker(folder: str, name: str, score: str, evaluated: str, start_at: str) -> None:
    from test_registry import register

    from pipelines.lib import tracking

    tracking.configure_mlflow()
    Path(folder).mkdir(parents=True, exist_ok=True)
    time.sleep(max(0.0, float(start_at) - time.time()))
    done = register(Path(folder), name, float(score), evaluated=json.loads(evaluated) or None)
    print(
        json.dumps(
            {
                "version": done.version,
                "created": done.created,
                "aliases": done.aliases,
                "moves": [m.alias for m in done.moves],
                "run_id": tracking.configure_mlflow().get_model_version(name, done.version).run_id,
            }
        )
    )


if __name__ == "__main__":
    _worker(*sys.argv[1:])
