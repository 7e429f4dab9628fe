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
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import yaml  # noqa: E402
from common import machine, write_results  # noqa: E402

from pipelines.lib.base_model import embedded_model_dir  # noqa: E402
from pipelines.worker.generation import Models  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--recipe", default="recipes/address-extraction-lora.yaml")
    args = parser.parse_args()

    model_dir = embedded_model_dir()
    corpus = REPO / "data" / "address" / "addresses.jsonl"
    rows = [json.loads(line) for line in corpus.read_text().splitlines()[: args.rows]]
    recipe = yaml.safe_load((REPO / args.recipe).read_text())
    system, max_new_tokens = recipe["data"]["system_prompt"], recipe["eval"]["max_new_tokens"]
    conversations = [
        [{"role": "system", "content": system}, {"role": "user", "content": row["address"]}]
        for row in rows
    ]
    models = Models(str(model_dir))
    models.generate(conversations[:2], 8, 2)  # warm-up

    start = time.perf_counter()
    batched, batched_tokens = models.generate(conversations, max_new_tokens, args.batch_size)
    batched_s = time.perf_counter() - start

    start = time.perf_counter()
    single, single_tokens = [], []
    for conversation in conversations:
        answer, count = models.generate([conversation], max_new_tokens, 1)
        single += answer
        single_tokens += count
    single_s = time.perf_counter() - start

    same = sum(a == b for a, b in zip(batched, single))
    lines = ["| mode | wall s | rows/s | new tokens/s |", "|---|---|---|---|"]
    for name, seconds, tokens in (
        ("one at a time (baseline)", single_s, single_tokens),
        (f"batched x{args.batch_size} (rung)", batched_s, batched_tokens),
    ):
        lines.append(
            f"| {name} | {seconds:.1f} | {len(rows) / seconds:.2f} | {sum(tokens) / seconds:.1f} |"
        )
    lines.append(
        f"\nspeed-up: {single_s / batched_s:.2f}x; identical answers: {same}/{len(rows)}"
        f" (rows {len(rows)}, max_new_tokens {max_new_tokens}, "
        f"torch threads {torch.get_num_threads()})"
    )
    table = "\n".join(lines)
    print(table)
    summary = {
        "machine": machine(),
        "rows": len(rows),
        "batch_size": args.batch_size,
        "max_new_tokens": max_new_tokens,
        "torch_threads": torch.get_num_threads(),
        "single_s": round(single_s, 2),
        "batched_s": round(batched_s, 2),
        "single_new_tokens": sum(single_tokens),
        "batched_new_tokens": sum(batched_tokens),
        "speedup": round(single_s / batched_s, 2),
        "identical_answers": same,
    }
    write_results("generation", summary, table)


if __name__ == "__main__":
    main()
