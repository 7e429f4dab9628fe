"""No-op re-run of a recipe against its first run (asset caching).

Runs `rung run <recipe>` twice in a fresh state dir (its own Dagster home, MLflow
store and run outputs; the user's are untouched): the first run computes every
asset; the second has nothing changed, so every expensive asset reuses its
outputs and registration finds its version. Reports each command's wall time
(process start included) and each step's time from the Dagster event log.

    make bench-cache      # or: .venv/bin/python benchmarks/noop_rerun.py [--recipe ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNG = REPO / ".venv" / "bin" / "rung"
RESULTS = REPO / "benchmarks" / "results"


def timed_run(recipe: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([str(RUNG), "run", str(recipe)], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def step_seconds(state: Path) -> list[dict[str, float]]:
    """Per run (oldest first): {step: seconds} from the benchmark's own Dagster instance."""
    os.environ["DAGSTER_HOME"] = str(state / ".dagster")
    import dagster as dg

    instance = dg.DagsterInstance.get()
    runs = sorted(instance.get_runs(), key=lambda r: instance.get_run_stats(r.run_id).start_time)
    return [{s.step_key: round(s.end_time - s.start_time, 2)
             for s in instance.get_run_step_stats(run.run_id)} for run in runs]


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    memory = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal"))) / 2**20
    return (f"{os.cpu_count()} cores ({model}), {memory:.0f} GiB RAM, Python "
            f"{platform.python_version()}, no GPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipe", default="recipes/address-extraction-lora.yaml")
    args = parser.parse_args()
    recipe = (REPO / args.recipe).resolve()
    with tempfile.TemporaryDirectory(prefix="rung-bench-cache-") as tmp:
        env = {**os.environ, "RUNG_STATE_DIR": tmp}
        first = timed_run(recipe, env)
        print(f"first run: {first:.1f} s", flush=True)
        noop = timed_run(recipe, env)
        print(f"no-op re-run: {noop:.1f} s", flush=True)
        steps = step_seconds(Path(tmp))
    result = {"recipe": args.recipe, "machine": machine(), "first_run_s": round(first, 1),
              "noop_rerun_s": round(noop, 1), "ratio": round(first / noop, 1),
              "steps_first_s": steps[0], "steps_noop_s": steps[1]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "noop_rerun.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| step | first run (s) | no-op re-run (s) |", "|---|---|---|"]
    lines += [f"| {step} | {seconds} | {steps[1].get(step, '-')} |"
              for step, seconds in steps[0].items()]
    lines += [f"| **whole command** (`rung run`, process start included) | **{first:.1f}** | "
              f"**{noop:.1f}** |"]
    table = "\n".join(lines)
    (RESULTS / "noop_rerun.md").write_text(
        f"Recipe `{args.recipe}`; {result['machine']}.\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    sys.exit(main())
