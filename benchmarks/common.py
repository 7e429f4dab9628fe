"""What every benchmark shares: the machine it ran on and where results go."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNG = REPO / ".venv" / "bin" / "rung"
RESULTS = REPO / "benchmarks" / "results"


def has_gpu() -> bool:
    return Path("/dev/nvidia0").exists()


def machine() -> str:
    """One line: cores, CPU model, memory, Python, GPU or not."""
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    model = next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
        platform.processor(),
    )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = "a" if has_gpu() else "no"
    return (
        f"{os.cpu_count()} cores ({model}), {memory:.0f} GiB RAM, "
        f"Python {platform.python_version()}, {gpu} GPU"
    )


def write_results(name: str, summary: dict, markdown: str) -> None:
    """benchmarks/results/<name>.json (numbers) and <name>.md (the table, with the machine)."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(f"machine: {summary['machine']}\n\n{markdown}\n")
