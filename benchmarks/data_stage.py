"""Benchmark of the data stage: rung vs the naive baseline, on synthetic chat rows.

    .venv/bin/python benchmarks/data_stage.py            # 1M rows (make bench-data)
    .venv/bin/python benchmarks/data_stage.py --rows 50000 --baseline-rows 20000

Generates chat rows (OpenAI messages JSONL) with planted exact duplicates (the
same row with extra spaces) and planted near-duplicates (one word changed, or
punctuation and case changed), then runs, each in its own process so that peak
memory is its own:

- rung: validation and normalization, exact dedupe, near dedupe (MinHash LSH),
  split, writing train and held-out files (pipelines/lib/dataset.py);
- baseline: what a user would write: pandas read_json + drop_duplicates on the
  joined text, datasketch MinHash + MinHashLSH one row at a time, random split.

The baseline runs on `--baseline-rows` rows (default 100k) and its throughput
is extrapolated linearly to the full size, which flatters it (LSH lookups get
slower as the index grows). Prints a table and writes benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine, write_results

NUM_PERM = 128
THRESHOLD = 0.8
SHINGLE = 3


def _vocabulary(rng: random.Random, size: int = 30000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choices(letters, k=rng.randint(3, 9))) for _ in range(size)]


def _sentence(rng: random.Random, vocab: list[str], words: int) -> str:
    return " ".join(rng.choices(vocab, k=words)).capitalize() + "."


def generate(path: Path, rows: int, seed: int = 0) -> dict:
    """Write `rows` chat rows; 6% planted exact, 6% planted near duplicates."""
    rng = random.Random(seed)
    vocab = _vocabulary(rng)
    planted_exact = planted_near = 0
    base: list[tuple[str, str]] = []
    truth = []  # (line, kind, line of the original)
    with path.open("w", encoding="utf-8") as out:
        for line in range(1, rows + 1):
            roll = rng.random()
            if base and roll < 0.06:
                origin = rng.randrange(len(base))
                user, answer = base[origin]
                user = "  " + user.replace(" ", "  ", 2)  # same after normalization
                planted_exact += 1
                truth.append((line, "exact", origin + 1))
            elif base and roll < 0.12:
                origin = rng.randrange(len(base))
                user, answer = base[origin]
                words = answer.split(" ")
                if rng.random() < 0.5:  # one word changed
                    words[rng.randrange(len(words))] = rng.choice(vocab)
                    answer = " ".join(words)
                else:  # punctuation and case only
                    answer = answer.upper().replace(".", "!")
                planted_near += 1
                truth.append((line, "near", origin + 1))
            else:
                user = _sentence(rng, vocab, rng.randint(12, 25))
                answer = _sentence(rng, vocab, rng.randint(50, 90))
                base.append((user, answer))
                truth.append((line, "unique", line))
                row = {
                    "messages": [
                        {"role": "user", "content": user},
                        {"role": "assistant", "content": answer},
                    ]
                }
                out.write(json.dumps(row) + "\n")
                continue
            row = {
                "messages": [
                    {"role": "user", "content": user},
                    {"role": "assistant", "content": answer},
                ]
            }
            out.write(json.dumps(row) + "\n")
    # base indexes -> lines of unique rows
    unique_lines = [line for line, kind, _ in truth if kind == "unique"]
    truth = [
        (line, kind, unique_lines[o - 1] if kind != "unique" else o) for line, kind, o in truth
    ]
    (path.parent / "truth.json").write_text(json.dumps(truth))
    return {"rows": rows, "planted_exact": planted_exact, "planted_near": planted_near}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _shingles(text: str) -> set[str]:
    words = re.findall(r"\w+", text.lower())
    if len(words) < SHINGLE:
        return {" ".join(words)}
    return {" ".join(words[i : i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}


def run_rung(path: Path, workdir: Path) -> dict:
    from pipelines.lib import dataset
    from pipelines.recipe import DataSection

    data = DataSection(sources=[str(path)], format="messages", max_bad_fraction=0.05)
    start = time.perf_counter()
    result = dataset.clean_sources([path], data, count_tokens=None, sequence_len=10**9)
    # As the assets do: cleaned_data writes its files, split reads the cleaned file.
    t_write = time.perf_counter()
    cleaned = dataset.write_clean_outputs(result, workdir)
    counts, reconciles = result.counts, result.reconciles()
    dropped = [(d["line"], d["stage"], d["detail"]) for d in result.dropped]
    del result
    t_split = time.perf_counter()
    split = dataset.split_rows(dataset.read_jsonl(Path(cleaned["file"])), data)
    written = dataset.write_split(split, workdir)
    end = time.perf_counter()
    return {
        "total_s": end - start,
        "stages_s": {
            **cleaned["timings_s"],
            "write_cleaned": t_split - t_write,
            "split_and_write": end - t_split,
        },
        "counts": counts,
        "reconciles": reconciles,
        "train_rows": written["train_rows"],
        "heldout_rows": written["heldout_rows"],
        "dropped": dropped,
        "peak_rss_mb": _peak_rss_mb(),
    }


def run_baseline(path: Path, limit: int) -> dict:
    import pandas as pd
    from datasketch import MinHash, MinHashLSH

    start = time.perf_counter()
    frame = pd.read_json(path, lines=True, nrows=limit)
    frame["text"] = frame["messages"].map(
        lambda ms: "\n".join(" ".join(m["content"].split()) for m in ms)
    )
    frame = frame.drop_duplicates("text")
    t_exact = time.perf_counter()
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    keep = []
    for index, text in zip(frame.index, frame["text"], strict=True):
        minhash = MinHash(num_perm=NUM_PERM)
        minhash.update_batch([s.encode() for s in _shingles(text)])
        if lsh.query(minhash):
            keep.append(False)
            continue
        lsh.insert(str(index), minhash)
        keep.append(True)
    frame = frame[keep]
    t_near = time.perf_counter()
    heldout = frame.sample(frac=0.15, random_state=42)
    train = frame.drop(heldout.index)
    train[["messages"]].to_json(
        Path(tempfile.gettempdir()) / "baseline_train.jsonl", orient="records", lines=True
    )
    end = time.perf_counter()
    return {
        "rows": limit,
        "total_s": end - start,
        "stages_s": {
            "read_and_exact": t_exact - start,
            "near_dedupe": t_near - t_exact,
            "split_and_write": end - t_near,
        },
        "kept": len(frame),
        "peak_rss_mb": _peak_rss_mb(),
    }


def near_quality(path: Path, rung: dict) -> dict:
    """Recall of planted near-duplicates with Jaccard >= 0.9 and the false-merge rate."""
    truth = {
        line: (kind, origin)
        for line, kind, origin in json.loads((path.parent / "truth.json").read_text())
    }
    texts: dict[int, str] = {}
    wanted = {line for line, (kind, _) in truth.items() if kind == "near"}
    wanted |= {truth[line][1] for line in wanted}
    with path.open() as handle:
        for line, raw in enumerate(handle, start=1):
            if line in wanted:
                texts[line] = "\n".join(m["content"] for m in json.loads(raw)["messages"])
    dropped = {line: (stage, detail) for line, stage, detail in rung["dropped"]}
    detected = high = 0
    for line, (kind, origin) in truth.items():
        if kind != "near":
            continue
        a, b = _shingles(texts[line]), _shingles(texts[origin])
        if len(a & b) / len(a | b) < 0.9:
            continue
        high += 1
        # removed either way: two copies of one row can be exact duplicates of each other
        detected += dropped.get(line, ("",))[0] in ("near_duplicate", "exact_duplicate")

    def family(line: int) -> int:  # the unique row a planted copy was made from
        return truth[line][1]

    merges = [
        (line, int(detail.rsplit(" ", 1)[-1]))
        for line, (stage, detail) in dropped.items()
        if stage == "near_duplicate"
    ]
    false = sum(family(line) != family(head) for line, head in merges)
    return {
        "planted_near_j09": high,
        "recall_j09": detected / max(1, high),
        "merges": len(merges),
        "false_merges": false,
        "false_merge_rate": false / max(1, len(merges)),
    }


def _child(stage: str, path: Path, folder: str, baseline_rows: int) -> dict:
    out = Path(folder) / f"{stage}.json"
    subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            stage,
            "--data",
            str(path),
            "--out",
            str(out),
            "--baseline-rows",
            str(baseline_rows),
        ],
        check=True,
    )
    return json.loads(out.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-rows", type=int, default=100_000)
    parser.add_argument("--child", choices=["rung", "baseline"])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child == "rung":
        with tempfile.TemporaryDirectory() as tmp:
            args.out.write_text(json.dumps(run_rung(args.data, Path(tmp))))
        return 0
    if args.child == "baseline":
        args.out.write_text(json.dumps(run_baseline(args.data, args.baseline_rows)))
        return 0

    baseline_rows = min(args.baseline_rows, args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "chat.jsonl"
        started = time.perf_counter()
        planted = generate(path, args.rows)
        print(f"generated {args.rows} rows in {time.perf_counter() - started:.0f} s: {planted}")
        rung = _child("rung", path, tmp, baseline_rows)
        print(f"rung: {rung['total_s']:.1f} s, stages {rung['stages_s']}")
        baseline = _child("baseline", path, tmp, baseline_rows)
        print(f"baseline on {baseline['rows']} rows: {baseline['total_s']:.1f} s")
        quality = near_quality(path, rung)
    counts = rung["counts"]
    stages = rung["stages_s"]
    whole_rate = args.rows / rung["total_s"]
    baseline_rate = baseline["rows"] / baseline["total_s"]
    base_exact_rate = baseline["rows"] / baseline["stages_s"]["read_and_exact"]
    table = [
        (
            "rows (planted exact / near)",
            f"{args.rows:,} ({planted['planted_exact']:,} / {planted['planted_near']:,})",
            "",
        ),
        ("validation + normalization", f"{args.rows / stages['validate']:,.0f} rows/s", ""),
        (
            "exact dedupe (hash + drop)",
            f"{(args.rows - counts['quarantined']) / stages['exact_dedupe']:,.0f} rows/s",
            f"baseline read + drop_duplicates: {base_exact_rate:,.0f} rows/s",
        ),
        (
            "near dedupe (MinHash LSH)",
            f"{(counts['kept'] + counts['near_duplicates']) / stages['near_dedupe']:,.0f} rows/s",
            f"baseline datasketch: {baseline['rows'] / baseline['stages_s']['near_dedupe']:,.0f}"
            " rows/s",
        ),
        ("write cleaned file", f"{counts['kept'] / stages['write_cleaned']:,.0f} rows/s", ""),
        (
            "read cleaned, split, write train + held-out",
            f"{counts['kept'] / stages['split_and_write']:,.0f} rows/s",
            f"{rung['train_rows']:,} train / {rung['heldout_rows']:,} held-out",
        ),
        (
            "whole stage",
            f"{whole_rate:,.0f} rows/s ({rung['total_s']:.0f} s)",
            f"baseline: {baseline_rate:,.0f} rows/s on {baseline['rows']:,} rows; "
            f"rung is {whole_rate / baseline_rate:.1f}x faster",
        ),
        (
            "peak memory",
            f"{rung['peak_rss_mb'] / 1024:.2f} GB",
            f"baseline: {baseline['peak_rss_mb'] / 1024:.2f} GB on {baseline['rows']:,} rows",
        ),
        (
            "near-dup recall at Jaccard >= 0.9",
            f"{quality['recall_j09']:.4f} ({quality['planted_near_j09']:,} pairs)",
            "",
        ),
        (
            "false merges",
            f"{quality['false_merges']} of {quality['merges']:,} "
            f"({quality['false_merge_rate']:.2%})",
            "",
        ),
        ("counts reconcile", str(rung["reconciles"]), str(counts)),
    ]
    lines = ["| measure | rung | note |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in table]
    report = "\n".join(lines)
    print(f"\nmachine: {machine()}\n\n{report}")
    summary = {
        "machine": machine(),
        "rows": args.rows,
        "planted": planted,
        "rung": {k: v for k, v in rung.items() if k != "dropped"},
        "baseline": baseline,
        "quality": quality,
    }
    write_results("data_stage", summary, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
