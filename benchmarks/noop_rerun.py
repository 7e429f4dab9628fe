"""No-op re-run of a recipe against its first run (asset caching).

Runs `rung run <recipe>` in a fresh state dir (its own Dagster home, MLflow store
and run outputs; the user's are untouched) and a copy of the recipe: the first run
computes every asset; the second has nothing changed, so every expensive asset
reuses its outputs (and, after a SHIP, registration finds its version); the third
changes only the eval section (eval.num_samples), so only evaluation (and
registration, after a SHIP) runs again.
Reports each command's wall time (process start included) and each step's time
and cache status from the Dagster event log.

    make bench-cache      # or: .venv/bin/python benchmarks/noop_rerun.py [--recipe ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from common import REPO, RUNG, machine, write_results


def timed_run(recipe: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([str(RUNG), "run", str(recipe)], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def steps(state: Path) -> list[dict[str, str]]:
    """Per run (oldest first): {step: "seconds (cache status)"} from its Dagster instance."""
    os.environ["DAGSTER_HOME"] = str(state / ".dagster")
    import dagster as dg

    instance = dg.DagsterInstance.get()
    runs = sorted(instance.get_runs(), key=lambda r: instance.get_run_stats(r.run_id).start_time)
    out = []
    for run in runs:
        cache = {}
        for event in instance.all_logs(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ):
            status = event.dagster_event.event_specific_data.materialization.metadata.get("cache")
            if status is not None:
                cache[event.dagster_event.asset_key.path[-1]] = status.value
        out.append(
            {
                s.step_key: f"{s.end_time - s.start_time:.1f}"
                + (f" ({cache[s.step_key]})" if s.step_key in cache else "")
                for s in instance.get_run_step_stats(run.run_id)
            }
        )
    return out


def change_eval(recipe: Path) -> None:
    """Change only the eval section: one more sample answer in the report."""
    import yaml

    spec = yaml.safe_load(recipe.read_text())
    spec.setdefault("eval", {})["num_samples"] = spec["eval"].get("num_samples", 5) + 1
    recipe.write_text(yaml.safe_dump(spec, sort_keys=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipe", default="recipes/address-extraction-lora.yaml")
    args = parser.parse_args()
    source = (REPO / args.recipe).resolve()
    with tempfile.TemporaryDirectory(prefix="rung-bench-cache-") as tmp:
        recipe = Path(tmp) / "recipes" / source.name
        recipe.parent.mkdir()
        recipe.write_bytes(source.read_bytes())
        env = {
            **os.environ,
            "RUNG_STATE_DIR": str(Path(tmp) / "state"),
            "RUNG_RECIPES_DIR": str(recipe.parent),
        }
        first = timed_run(recipe, env)
        print(f"first run: {first:.1f} s", flush=True)
        noop = timed_run(recipe, env)
        print(f"no-op re-run: {noop:.1f} s", flush=True)
        change_eval(recipe)
        eval_only = timed_run(recipe, env)
        print(f"eval-only change: {eval_only:.1f} s", flush=True)
        per_step = steps(Path(tmp) / "state")
    result = {
        "recipe": args.recipe,
        "machine": machine(),
        "first_run_s": round(first, 1),
        "noop_rerun_s": round(noop, 1),
        "eval_only_change_s": round(eval_only, 1),
        "steps": dict(zip(("first", "noop", "eval_only"), per_step)),
    }
    lines = [
        "| step | first run (s) | no-op re-run (s) | eval-only change (s) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {step} | {seconds} | {per_step[1].get(step, '-')} | {per_step[2].get(step, '-')} |"
        for step, seconds in per_step[0].items()
    ]
    lines += [
        f"| **whole command** (`rung run`, process start included) | **{first:.1f}** | "
        f"**{noop:.1f}** | **{eval_only:.1f}** |"
    ]
    table = "\n".join(lines)
    write_results("noop_rerun", result, f"recipe `{args.recipe}`\n\n{table}")
    print(table)


if __name__ == "__main__":
    main()
