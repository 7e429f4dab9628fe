"""Run `axolotl train` under Dagster Pipes (trainer environment).

Axolotl's output goes line by line to a log file; loss lines and progress are
forwarded to the Dagster run as they happen. On failure the last lines of the
log are raised, so the Dagster run shows why without opening a file.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
from collections import deque
from pathlib import Path

from dagster_pipes import open_dagster_pipes

from pipelines.worker.divergence import DIVERGENCE_FILE, describe_divergence, read_divergence

_LOSS_LINE = re.compile(r"\{'loss': .*\}")
# The trainer's own bar has no label ("  40%|####  | 30/75 [..."); data-prep bars do.
_PROGRESS = re.compile(r"^\s*\d+%\|[^|]*\| (\d+)/(\d+) \[")
TAIL_LINES = 40


def _stream(process: subprocess.Popen, log_file: Path, context) -> deque[str]:
    """Copy the trainer's output to the log; forward losses and every 10% of progress."""
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    last_decile = -1
    with log_file.open("w", encoding="utf-8") as log:
        buffer = ""
        for chunk in iter(lambda: process.stdout.read(256), ""):
            buffer += chunk
            *lines, buffer = re.split(r"[\r\n]", buffer)
            for line in filter(None, (line.rstrip() for line in lines)):
                log.write(line + "\n")
                tail.append(line)
                if match := _LOSS_LINE.search(line):
                    values = ast.literal_eval(match.group(0))
                    context.log.info(
                        f"train loss {float(values['loss']):.4f} at epoch {values.get('epoch')}"
                    )
                elif (match := _PROGRESS.search(line)) and int(match.group(2)) > 1:
                    done, total = int(match.group(1)), int(match.group(2))
                    decile = 10 * done // total
                    if decile > last_decile:
                        last_decile = decile
                        context.log.info(f"training step {done}/{total}")
        if buffer:
            log.write(buffer + "\n")
            tail.append(buffer)
    return tail


def trainer_environment(command_env: dict[str, str]) -> dict[str, str]:
    """This worker's environment, plus the launch command's variables, minus Dagster
    Pipes' own: only this process talks to Dagster, whatever number of training
    processes the launcher starts (their output reaches Dagster through this one)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES_")}
    return {**env, **command_env}


def main() -> None:
    with open_dagster_pipes() as context:
        log_file = Path(context.get_extra("log_file"))
        # `axolotl train <config> --launcher ...`, rendered by pipelines/lib/launchers.py
        command = [str(part) for part in context.get_extra("command")]
        context.log.info("running: " + " ".join(command))
        adapter_dir = Path(context.get_extra("adapter_dir"))
        (adapter_dir / DIVERGENCE_FILE).unlink(missing_ok=True)  # only this training's own
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=trainer_environment(context.get_extra("command_env")),
        )
        tail = _stream(process, log_file, context)
        if process.wait() != 0:
            raise RuntimeError(
                f"axolotl train exited with code {process.returncode}; last lines of {log_file}:\n"
                + "\n".join(tail)
            )
        if (diverged := read_divergence(adapter_dir)) is not None:
            # Axolotl stopped (the guard plugin) and saved an adapter of NaNs: not a result.
            raise RuntimeError(f"{describe_divergence(diverged)}; the adapter it saved is not used")
        if not (adapter_dir / "adapter_model.safetensors").is_file():
            raise RuntimeError(f"axolotl finished but wrote no adapter in {adapter_dir}")
        context.report_asset_materialization(metadata={"log_file": str(log_file)})


if __name__ == "__main__":
    main()
