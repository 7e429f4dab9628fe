"""QLoRA on a CUDA GPU: training throughput and memory against plain LoRA, same run.

Runs `rung run` on the QLoRA recipe and on a copy of it with `train.adapter: lora`
(everything else equal: all-linear LoRA r16, micro batch 16, sample packing), each
in a fresh state dir (its own Dagster home, MLflow store and run outputs; the
user's are untouched), then reads from each MLflow run what Axolotl logged:
training time, samples/s, steps/s and its GPU memory figures, plus the gate's
verdict. The ratio QLoRA / LoRA is what a user trades: memory against speed.

Needs a CUDA GPU (on a CPU machine the QLoRA run stops before training, by design,
and this script says so). Writes benchmarks/results/qlora_gpu.{json,md} when both
legs ran; `--adapters lora` alone (a smoke test, e.g. on a CPU with a tiny recipe)
only prints.

    make bench-qlora      # or: .venv/bin/python benchmarks/qlora_gpu.py [--recipe ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from common import REPO, RUNG, has_gpu, machine, write_results

# Axolotl's end-of-training numbers and its GPU memory gauges, as logged to MLflow.
SPEED = ("train_runtime", "train_samples_per_second", "train_steps_per_second")


def run_variant(recipe: Path, adapter: str, state: Path) -> dict:
    """Launch one variant of the recipe in its own state dir; return what MLflow holds."""
    folder = state / "recipes"
    folder.mkdir(parents=True)
    spec = yaml.safe_load(recipe.read_text())
    spec["train"]["adapter"] = adapter
    variant = folder / f"{recipe.stem}-{adapter}.yaml"
    variant.write_text(yaml.safe_dump(spec, sort_keys=False))
    env = {**os.environ, "RUNG_STATE_DIR": str(state / "state"), "RUNG_RECIPES_DIR": str(folder)}
    started = time.perf_counter()
    done = subprocess.run([str(RUNG), "run", str(variant)], env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{variant.name}: `rung run` failed (exit {done.returncode}); see its log above")
    # Read the run back in a child with the variant's state (the MLflow store is per state).
    reader = (
        "import json, sys\n"
        "from pipelines.lib import tracking\n"
        "client = tracking.configure_mlflow()\n"
        "exp = client.get_experiment_by_name('rung')\n"
        "run = client.search_runs([exp.experiment_id], order_by=['start_time DESC'])[0]\n"
        "print(json.dumps({'metrics': run.data.metrics, 'verdict': run.data.tags.get("
        "'rung.verdict')}))\n"
    )
    out = subprocess.run(
        [str(RUNG.parent / "python"), "-c", reader],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    logged = json.loads(out.strip().splitlines()[-1])
    metrics = logged["metrics"]
    return {
        "adapter": adapter,
        "wall_s": round(wall, 1),
        "verdict": logged["verdict"],
        **{name: metrics.get(name) for name in SPEED},
        "memory": {k: v for k, v in metrics.items() if "mem" in k.lower()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="recipes/address-extraction-qlora.yaml")
    parser.add_argument(
        "--adapters",
        default="lora,qlora",
        help="which variants to run (lora alone works on a CPU, as a smoke test)",
    )
    args = parser.parse_args()
    adapters = args.adapters.split(",")
    if "qlora" in adapters and not has_gpu():
        sys.exit("QLoRA needs a CUDA GPU and this machine has none: run this on a GPU machine")
    recipe = (REPO / args.recipe).resolve()
    rows = []
    for adapter in adapters:
        with tempfile.TemporaryDirectory(prefix=f"rung-bench-{adapter}-") as tmp:
            rows.append(run_variant(recipe, adapter, Path(tmp)))
            print(rows[-1], flush=True)
    by_adapter = {row["adapter"]: row for row in rows}
    lines = [
        "| adapter | training s | samples/s | steps/s | GPU memory (MLflow) | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        memory = ", ".join(f"{k} {v:.2f}" for k, v in sorted(row["memory"].items())) or "-"
        lines.append(
            f"| {row['adapter']} | {row['train_runtime']} | "
            f"{row['train_samples_per_second']} | {row['train_steps_per_second']} | "
            f"{memory} | {row['verdict']} |"
        )
    speed = None
    if {"lora", "qlora"} <= by_adapter.keys():
        speed = (
            by_adapter["qlora"]["train_samples_per_second"]
            / by_adapter["lora"]["train_samples_per_second"]
        )
        lines.append(f"\nQLoRA / LoRA samples/s: {speed:.2f}x")
    table = "\n".join(lines)
    print(table)
    if speed is None:  # a smoke test of one leg is not a result
        return
    write_results(
        "qlora_gpu",
        {
            "machine": machine(),
            "recipe": args.recipe,
            "runs": rows,
            "qlora_over_lora_samples_per_s": speed,
        },
        table,
    )


if __name__ == "__main__":
    main()
