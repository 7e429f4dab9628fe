"""Serving several adapters: one process with 1 or 4 adapters vs one process per adapter.

Tiny random LoRA adapters (r=8 on q/k/v/o, no training) on the embedded base
model; each configuration answers the same requests (4 per adapter, greedy,
`--tokens` new tokens, `min_new_tokens` = max so every answer costs the same):

- one process, 1 adapter: the 16 requests all go to it (the floor: no mixing);
- one process, 4 adapters: 4 requests per adapter, mixed batches of 8
  (`generate(adapter_names=...)`, what `rung serve` does);
- 4 processes, 1 adapter each: run at the same time, 4 requests each, batch 4.

Memory is the peak RSS of each process (summed over the 4 processes). Runs in the
trainer env; a few minutes on 2 cores.

    .venv-train/bin/python benchmarks/serving.py [--tokens 16]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import machine, write_results  # noqa: E402

from pipelines.lib.base_model import embedded_model_dir  # noqa: E402

ADAPTERS = ["a1", "a2", "a3", "a4"]
QUESTIONS = [
    "123 Main St, Springfield, IL 62704",
    "Suite 400, 500 W Madison Ave, Chicago, IL 60661",
    "PO Box 12, Austin, TX 78701",
    "77 Mass Ave, Cambridge, MA 02139",
]
WORKER = """
import json, os, resource, sys, time
sys.path.insert(0, sys.argv[1])
import torch
from pipelines.worker.serve import ChatJob, Engine, ServedAdapter
folder, names = sys.argv[2], json.loads(sys.argv[3])
tokens, batch = int(sys.argv[4]), int(sys.argv[5])
requests = json.loads(sys.argv[6])
started = time.perf_counter()
engine = Engine(sys.argv[7], [ServedAdapter(n, f"{folder}/{n}") for n in names])
loaded = time.perf_counter() - started
gen = engine.models.model.generation_config
gen.min_new_tokens = tokens  # every answer costs the same
jobs = [ChatJob(model, [{"role": "user", "content": q}], tokens) for model, q in requests]
engine.answer(jobs[:1])  # warm-up
started = time.perf_counter()
new = 0
for i in range(0, len(jobs), batch):
    new += sum(a.new_tokens for a in engine.answer(jobs[i:i + batch]))
seconds = time.perf_counter() - started
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"load_s": loaded, "seconds": seconds, "new_tokens": new, "peak_rss_mb": rss}))
"""


def make_adapters(folder: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    for seed, name in enumerate(ADAPTERS, start=1):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(embedded_model_dir(), dtype=torch.float32)
        config = LoraConfig(
            r=8,
            lora_alpha=16,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
            init_lora_weights=False,
        )
        get_peft_model(model, config).save_pretrained(folder / name)


def start(
    folder: Path, names: list[str], tokens: int, batch: int, requests: list
) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            WORKER,
            str(REPO),
            str(folder),
            json.dumps(names),
            str(tokens),
            str(batch),
            json.dumps(requests),
            str(embedded_model_dir()),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def result(process: subprocess.Popen) -> dict:
    out, _ = process.communicate()
    if process.returncode:
        raise SystemExit(f"worker failed ({process.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=16)
    args = parser.parse_args()
    per_adapter = [(name, q) for name in ADAPTERS for q in QUESTIONS]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_adapters(folder)
        one = result(
            start(folder, ["a1"], args.tokens, 8, [("a1", q) for q in QUESTIONS * len(ADAPTERS)])
        )
        rows["one process, 1 adapter"] = {**one, "processes": 1}
        # interleaved so that every batch of 8 mixes the 4 adapters
        mixed = [
            per_adapter[i * len(QUESTIONS) + j]
            for j in range(len(QUESTIONS))
            for i in range(len(ADAPTERS))
        ]
        four = result(start(folder, ADAPTERS, args.tokens, 8, mixed))
        rows["one process, 4 adapters (mixed batches)"] = {**four, "processes": 1}
        started = time.perf_counter()
        processes = [
            start(folder, [n], args.tokens, 4, [(n, q) for q in QUESTIONS]) for n in ADAPTERS
        ]
        each = [result(p) for p in processes]
        wall = time.perf_counter() - started
        rows["4 processes, 1 adapter each"] = {
            "load_s": max(e["load_s"] for e in each),
            "seconds": max(e["seconds"] for e in each),
            "new_tokens": sum(e["new_tokens"] for e in each),
            "peak_rss_mb": sum(e["peak_rss_mb"] for e in each),
            "processes": 4,
            "wall_s_including_start": wall,
        }
    lines = [
        "| configuration | processes | new tokens | generation s | new tokens/s | peak RSS (sum) |",
        "|---|---|---|---|---|---|",
    ]
    for label, r in rows.items():
        r["tokens_per_s"] = r["new_tokens"] / r["seconds"]
        lines.append(
            f"| {label} | {r['processes']} | {r['new_tokens']} | {r['seconds']:.1f} | "
            f"{r['tokens_per_s']:.1f} | {r['peak_rss_mb']:.0f} MB |"
        )
    summary = {
        "machine": machine(),
        "tokens": args.tokens,
        "results": rows,
        "max_rss_self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    write_results("serving", summary, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
