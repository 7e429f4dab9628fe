"""Hostile data at scale: 1M chat rows, 10% of them malformed in every way we know of.

    make bench-hostile   # or: .venv/bin/python benchmarks/hostile_rows.py [--rows N]

The rows of benchmarks/data_stage.py (with its planted exact and near duplicates), of
which a seeded 10% are replaced by a malformed line of one of these kinds: bytes that
are not UTF-8, a raw NUL byte, a truncated JSON line, JSON nested 5,000 deep, a row
that is a JSON list, a field of the wrong type (content 42, messages as plain text), a
row without messages; plus 20 rows with a 1 MB message. rung's data stage
(pipelines/lib/dataset.py, with the embedded model's real token counter and
sequence_len 2048) runs in its own process. Checked and reported: every malformed
line quarantined with the reason its kind should get, every 1 MB row dropped as too
long, the counts reconcile (rows in = kept + quarantined + duplicates + too long), and
the peak memory against the clean 1M-row run of `make bench-data`. The baseline a user
would otherwise write, pandas `read_json(lines=True)`, runs on the same file.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, machine, write_results
from data_stage import _peak_rss_mb, generate

HUGE_ROWS = 20
SEQUENCE_LEN = 2048
GOOD = {"messages": [{"role": "user", "content": "HOSTILE"}, {"role": "assistant", "content": "a"}]}
ROW = json.dumps(GOOD).encode()
# kind -> (the malformed line, the start of the reason rung must give)
KINDS: dict[str, tuple[bytes, str]] = {
    "not UTF-8": (ROW.replace(b"HOSTILE", b"caf\xe9 \xff"), "invalid encoding"),
    "raw NUL byte": (ROW.replace(b"HOSTILE", b"a\x00b"), "invalid JSON"),
    "truncated JSON": (ROW[:30], "invalid JSON"),
    "nested 5,000 deep": (b'{"messages": ' + b"[" * 5000 + b"]" * 5000 + b"}", "invalid JSON"),
    "a JSON list": (json.dumps([GOOD]).encode(), "wrong type"),
    "content 42": (ROW.replace(b'"HOSTILE"', b"42"), "wrong type"),
    "messages as text": (b'{"messages": "hello there"}', "wrong type"),
    "no messages": (b'{"text": "hello there"}', "missing field"),
}  # fmt: skip


def plant(path: Path, fraction: float, seed: int = 1) -> dict[int, str]:
    """Replace a `fraction` of the lines by malformed ones (and HUGE_ROWS by 1 MB rows);
    returns {line: kind}."""
    rng = random.Random(seed)
    names = list(KINDS)
    planted: dict[int, str] = {}
    lines = path.read_bytes().splitlines()
    huge = set(rng.sample(range(len(lines)), HUGE_ROWS))
    for index in range(len(lines)):
        if index in huge:
            user = {"role": "user", "content": f"{index} " + "w " * 500_000}  # no two alike
            lines[index] = json.dumps({"messages": [user, GOOD["messages"][1]]}).encode()
            planted[index + 1] = "1 MB message"
        elif rng.random() < fraction:
            kind = names[index % len(names)]
            lines[index] = KINDS[kind][0]
            planted[index + 1] = kind
    path.write_bytes(b"\n".join(lines) + b"\n")
    return planted


def run_rung(path: Path) -> dict:
    from pipelines.lib import dataset
    from pipelines.lib.base_model import embedded_model_dir
    from pipelines.lib.token_length import ChatTokenCounter
    from pipelines.recipe import DataSection

    data = DataSection(sources=[str(path)], format="messages", max_bad_fraction=0.2)
    counter = ChatTokenCounter(embedded_model_dir())
    start = time.perf_counter()
    result = dataset.clean_sources(
        [path], data, count_tokens=counter.count, sequence_len=SEQUENCE_LEN
    )
    return {
        "total_s": time.perf_counter() - start,
        "counts": result.counts,
        "reconciles": result.reconciles(),
        "failure": result.failure(data.max_bad_fraction),
        "quarantine": {q["line"]: q["reason"] for q in result.quarantine},
        "too_long": [d["line"] for d in result.dropped if d["stage"] == "too_long"],
        "peak_rss_mb": _peak_rss_mb(),
    }


def run_pandas(path: Path) -> dict:
    import pandas as pd

    start = time.perf_counter()
    try:
        frame = pd.read_json(path, lines=True)
        outcome = f"read {len(frame):,} rows, no row flagged"
    except Exception as exc:  # noqa: BLE001 - what the user would see is the result
        outcome = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    return {"total_s": time.perf_counter() - start, "outcome": outcome}


def _child(kind: str, path: Path, out: Path) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--data", str(path), "--out", str(out)]
    subprocess.run(command, check=True)
    return json.loads(out.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--child", choices=["rung", "pandas"])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        run = run_rung if args.child == "rung" else run_pandas
        args.out.write_text(json.dumps(run(args.data)))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hostile.jsonl"
        generate(path, args.rows)
        planted = plant(path, args.fraction)
        size_mb = path.stat().st_size / 2**20
        print(f"{args.rows:,} rows ({size_mb:,.0f} MB), {len(planted):,} planted bad rows")
        rung = _child("rung", path, Path(tmp) / "rung.json")
        pandas = _child("pandas", path, Path(tmp) / "pandas.json")
    quarantine = {int(line): reason for line, reason in rung["quarantine"].items()}
    expected = {kind: reason for kind, (_, reason) in KINDS.items()} | {"1 MB message": "too long"}
    by_kind: dict[str, list[int]] = {}
    for line, kind in planted.items():
        by_kind.setdefault(kind, []).append(line)
    too_long = set(rung["too_long"])
    rows = []
    for kind, lines in by_kind.items():
        if kind == "1 MB message":
            caught = sum(line in too_long for line in lines)
        else:
            caught = sum(quarantine.get(line, "").startswith(expected[kind]) for line in lines)
        rows.append(
            {"kind": kind, "planted": len(lines), "caught": caught, "reason": expected[kind]}
        )
    unplanted_quarantined = sum(line not in planted for line in quarantine)
    clean = json.loads((REPO / "benchmarks" / "results" / "data_stage.json").read_text())
    clean_peak = clean["rung"]["peak_rss_mb"]
    results = {
        "machine": machine(),
        "rows": args.rows,
        "file_mb": round(size_mb),
        "kinds": rows,
        "all_caught": all(r["caught"] == r["planted"] for r in rows),
        "quarantined_but_not_planted": unplanted_quarantined,
        "counts": rung["counts"],
        "reconciles": rung["reconciles"],
        "stage_failure": rung["failure"],
        "rung_s": round(rung["total_s"], 1),
        "peak_rss_mb": round(rung["peak_rss_mb"]),
        "clean_run_peak_rss_mb": round(clean_peak),
        "peak_ratio_to_clean": round(rung["peak_rss_mb"] / clean_peak, 2),
        "pandas": pandas,
    }
    lines = [
        f"{args.rows:,} rows, {len(planted):,} planted bad ({size_mb:,.0f} MB file); "
        f"rung's data stage {rung['total_s']:.0f} s with token counting",
        "",
        "| kind | planted | caught | reason given |",
        "|---|---|---|---|",
        *(f"| {r['kind']} | {r['planted']:,} | {r['caught']:,} | {r['reason']} |" for r in rows),
        "",
        f"- quarantined but not planted: {unplanted_quarantined}",
        f"- counts reconcile: {rung['reconciles']} {rung['counts']}",
        f"- peak memory {rung['peak_rss_mb'] / 1024:.2f} GB vs {clean_peak / 1024:.2f} GB for "
        f"the clean 1M-row run of make bench-data ({results['peak_ratio_to_clean']}x)",
        f"- pandas read_json(lines=True) on the same file: {pandas['outcome']} "
        f"({pandas['total_s']:.0f} s)",
    ]
    write_results("hostile_rows", results, "\n".join(lines))
    print("\n".join(lines))
    return 0 if results["all_caught"] and rung["reconciles"] and not unplanted_quarantined else 1


if __name__ == "__main__":
    sys.exit(main())
