"""The forgetting frontier of the address demo: task score against probes lost, per setting.

Each setting is the demo recipe (recipes/address-extraction-lora.yaml) with a few
training keys changed — the gate and the probes are never touched. All settings run as
one recipe id in one state dir (never the user's), so rung's own asset cache computes the
data stages and the cheap rungs (the base model's answers, probes included) once and
reuses them. A setting's row is kept in the state dir, so with `--state DIR` an
interrupted benchmark resumes where it stopped (each setting is ~10-45 min on 2 cores).
Kept rows are found by setting name: use a new state dir when SETTINGS change. A setting
that SHIPs would become the shared recipe's champion and join the later settings' gate
(none has so far).
Writes benchmarks/results/forgetting_frontier.{json,md} and docs/img/forgetting_frontier.png.

    make bench-frontier   # or: .venv/bin/python benchmarks/forgetting_frontier.py \
                          #       [--state DIR] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from common import REPO, RUNG, machine, write_results

DEMO = REPO / "recipes" / "address-extraction-lora.yaml"
# name -> changes to the demo's train section (decided before any of them ran)
SETTINGS: dict[str, dict] = {
    "demo": {},
    "lower-lr": {"learning_rate": 0.0003},
    "q-v-only-r8": {"target_modules": ["q_proj", "v_proj"], "lora_r": 8, "lora_alpha": 16},
    "more-rehearsal": {
        "rehearsal": {"source": "data/sentiment/movie_reviews.csv", "field": "text", "rows": 300}
    },
}


def run_setting(name: str, changes: dict, state: Path) -> dict:
    """One setting's row; read back from the state dir if this setting already ran there."""
    kept = state / "frontier-rows" / f"{name}.json"
    if kept.is_file():
        return json.loads(kept.read_text())
    spec = yaml.safe_load(DEMO.read_text())
    spec["train"].update(changes)
    recipes = state / "frontier-recipes"
    recipes.mkdir(parents=True, exist_ok=True)
    # One recipe id for every setting (the demo's variants): the cache shares the untouched stages
    recipe = recipes / "frontier-demo.yaml"
    recipe.write_text(yaml.safe_dump(spec, sort_keys=False))
    env = {**os.environ, "RUNG_STATE_DIR": str(state), "RUNG_RECIPES_DIR": str(recipes)}
    started = time.perf_counter()
    log = REPO / "benchmarks" / "results" / f"forgetting_frontier-{name}.txt"
    with log.open("w") as out:  # the run's printed summary (the demo's, for the README)
        subprocess.run([str(RUNG), "run", str(recipe)], env=env, check=True, stdout=out)
    seconds = time.perf_counter() - started
    pairs = (line.strip().partition("  ") for line in log.read_text().splitlines())
    summary = {label: value.strip() for label, _, value in pairs}  # the summary's "label  value"
    report = json.loads(Path(summary["evaluation report"]).read_text())
    cached = "evaluation" in summary["reused from cache"]  # an earlier run's answers, not timed
    metric, forgetting = report["primary_metric"], report["forgetting"]
    row = {
        "setting": name,
        "changes": changes,
        "metric": metric,
        "tuned": report["candidates"]["tuned"][metric],
        "best_cheaper": report["candidates"][report["best_cheaper_rung"]][metric],
        "best_cheaper_rung": report["best_cheaper_rung"],
        "regressions": forgetting["regressions"],
        "gains": forgetting["gains"],
        "baseline_right": forgetting["baseline_right"],
        "mcnemar_p": forgetting["mcnemar_p"],
        "verdict": report["verdict"]["label"],
        "wall_s": None if cached else round(seconds, 1),
    }
    kept.parent.mkdir(exist_ok=True)
    kept.write_text(json.dumps(row))
    return row


def plot(rows: list[dict], file: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 3.2), dpi=100)
    for row in rows:
        axis.scatter(row["regressions"], row["tuned"], color="#2a7")
        axis.annotate(row["setting"], (row["regressions"], row["tuned"]), fontsize=8,
                      xytext=(4, 4), textcoords="offset points")  # fmt: skip
    cheaper = rows[0]["best_cheaper"]
    axis.axhline(cheaper, color="#69c", linestyle="--", label=f"{rows[0]['best_cheaper_rung']}")
    axis.axvline(0.5, color="#c44", linestyle=":", label="gate: 0 probes lost")
    axis.set_xlabel(f"forgetting probes lost (of {rows[0]['baseline_right']} the base gets right)")
    axis.set_ylabel(f"held-out {rows[0]['metric']} (tuned)")
    axis.margins(x=0.15, y=0.15)  # room for the labels
    axis.legend(fontsize=8)
    figure.tight_layout()
    file.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(file, metadata={"Software": None})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", choices=sorted(SETTINGS), help="settings to run")
    parser.add_argument(
        "--state", type=Path, help="state dir kept between runs (default: a temp one)"
    )
    args = parser.parse_args()
    names = args.only or list(SETTINGS)
    with tempfile.TemporaryDirectory(prefix="rung-frontier-") as tmp:
        state = args.state or Path(tmp) / "state"
        rows = [run_setting(name, SETTINGS[name], state) for name in names]
    plot(rows, REPO / "docs" / "img" / "forgetting_frontier.png")
    lines = [
        "| setting | changes | tuned | best cheaper rung | probes lost / gained | McNemar p "
        "| verdict | wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['setting']} | {json.dumps(r['changes']) if r['changes'] else '-'} "
        f"| {r['tuned']:.3f} | {r['best_cheaper_rung']} {r['best_cheaper']:.3f} "
        f"| {r['regressions']} / {r['gains']} of {r['baseline_right']} | {r['mcnemar_p']:.3g} "
        f"| {r['verdict']} | {'cached' if r['wall_s'] is None else round(r['wall_s'])} |"
        for r in rows
    ]
    write_results("forgetting_frontier", {"machine": machine(), "rows": rows}, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
