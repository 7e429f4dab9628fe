"""Held-out generation throughput: batched (rung's evaluation) vs one row at a time.

Runs in the trainer environment on the embedded base model, with the address
recipe's prompts, greedy, same budget. The baseline is what a user writes first:
a loop calling generate() once per row. Both produce the same answers (checked).

    make bench-generation      # or: .venv-train/bin/python benchmarks/generation.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pipelines.worker.generation import Models  # noqa: E402

SYSTEM = (
    "Extract the fields of the US address as one JSON object that maps usaddress "
    "tag names to their text, in reading order."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    args = parser.parse_args()

    model_dir = Path.home() / ".cache" / "rung" / "models" / "smollm2-135m-instruct"
    corpus = REPO / "data" / "address" / "addresses.jsonl"
    rows = [json.loads(line) for line in corpus.read_text().splitlines()[: args.rows]]
    conversations = [
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": row["address"]}]
        for row in rows
    ]
    models = Models(str(model_dir))
    models.generate(conversations[:2], 8, 2)  # warm-up

    start = time.perf_counter()
    batched, batched_tokens = models.generate(conversations, args.max_new_tokens, args.batch_size)
    batched_s = time.perf_counter() - start

    start = time.perf_counter()
    single, single_tokens = [], []
    for conversation in conversations:
        answer, count = models.generate([conversation], args.max_new_tokens, 1)
        single += answer
        single_tokens += count
    single_s = time.perf_counter() - start

    same = sum(a == b for a, b in zip(batched, single))
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch threads {__import__('torch').get_num_threads()}"
    )
    print(f"rows {len(rows)}, max_new_tokens {args.max_new_tokens}, batch {args.batch_size}")
    print("| mode | wall s | rows/s | new tokens/s |")
    print("|---|---|---|---|")
    for name, seconds, tokens in (
        ("one at a time (baseline)", single_s, single_tokens),
        (f"batched x{args.batch_size} (rung)", batched_s, batched_tokens),
    ):
        print(
            f"| {name} | {seconds:.1f} | {len(rows) / seconds:.2f} | {sum(tokens) / seconds:.1f} |"
        )
    print(f"speed-up: {single_s / batched_s:.2f}x; identical answers: {same}/{len(rows)}")


if __name__ == "__main__":
    main()
