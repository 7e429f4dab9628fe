"""How `axolotl train` is started for a recipe's `train.distributed`: the command line and
the environment (pure functions; pipelines/worker/train.py runs what they return).

Checked against the trainer env's sources (Axolotl 0.19.0, accelerate 1.13.0, torch 2.13):

- `axolotl train CFG --launcher accelerate -- ARGS` replaces itself with
  `accelerate launch ARGS -m axolotl.cli.train CFG` (torchrun likewise), finding the
  launcher by name on PATH: the trainer env's bin/ goes first.
- `accelerate launch --cpu` always starts one process (its "simple" launcher; more need
  mpirun). Several processes come from `--multi_gpu`, accelerate's torch.distributed.run
  launcher; with `ACCELERATE_USE_CPU=true` in their environment transformers builds a CPU
  state for them, and they join one gloo process group (DDP over gloo).
- torchrun on a machine without CUDA, without that variable, starts copies that each
  find no backend and train alone on all the rows: refused (`refusal`).
- torch.distributed.run gives every process one thread unless OMP_NUM_THREADS is set,
  so on a CPU the machine's cores are shared out explicitly.
- With WORLD_SIZE > 1 Axolotl sets the model's `device_map` to the local rank, an
  accelerator index a CPU cannot resolve; pipelines/lib/axolotl_config.py renders the
  fix (`max_memory` on the CPU only) for that case.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

from pipelines.recipe import TrainSection
from pipelines.recipe.train import DistributedSection

# Written beside the Axolotl config it launches; the Pipes launch reads it back.
LAUNCH_FILE = "launch.json"


class TrainerHost(NamedTuple):
    """Where `axolotl train` runs: this machine's trainer env (the default) or a pod in the
    trainer image (pipelines/lib/k8s_pod.py)."""

    trainer_bin: Path  # the trainer env's bin/: axolotl, accelerate, torchrun
    cuda: bool | None = None  # None: ask this machine's trainer env, when it matters
    path: str = ""  # the PATH the trainer bin/ goes in front of
    cpu_threads: int | None = None  # cores to share out between CPU processes
    mlflow_tracking_uri: str | None = None  # None: this machine's store


class AxolotlCommand(NamedTuple):
    """The command line of `axolotl train` and the variables to set for it (on top of the
    worker's own environment)."""

    argv: list[str]
    env: dict[str, str]


def depends_on_cuda(train: TrainSection) -> bool:
    """Whether the launch (or its refusal) depends on the machine having CUDA: not for one
    plain process, which runs the same everywhere."""
    return train.distributed.launcher != "python" or bool(train.deepspeed or train.fsdp)


def refusal(train: TrainSection, *, cuda: bool) -> str | None:
    """Why a machine with (or without) CUDA cannot train as `train` asks; None if it can."""
    if cuda:
        return None
    launch = "train.distributed: {launcher: accelerate, processes: N}"
    if train.deepspeed:
        return (
            f"train.deepspeed: {train.deepspeed} needs CUDA GPUs (DeepSpeed's ZeRO "
            "communicates over NCCL) and this machine has none. Run it on a GPU machine, or "
            f"drop train.deepspeed: {launch} trains data-parallel on a CPU."
        )
    if train.fsdp:
        return (
            "train.fsdp needs CUDA GPUs (FSDP2 shards the model across GPUs) and this machine "
            f"has none. Run it on a GPU machine, or drop train.fsdp: {launch} trains "
            "data-parallel on a CPU."
        )
    if train.distributed.launcher == "torchrun":
        return _torchrun_without_cuda(train.distributed.processes)
    return None


def _torchrun_without_cuda(processes: int) -> str:
    return (
        "train.distributed.launcher: torchrun on a machine without CUDA would start "
        f"{processes} unsynchronised copies of the training (torch finds no GPU backend, "
        "so each process trains alone on all the rows and they overwrite one adapter). "
        "Use launcher: accelerate, which rung starts with accelerate's CPU setting so "
        "that the processes average their gradients over gloo."
    )


def axolotl_command(
    trainer_bin: Path,
    config: Path,
    distributed: DistributedSection,
    cuda: bool,
    *,
    path: str = "",
    cpu_threads: int | None = None,
) -> AxolotlCommand:
    """`axolotl train <config>` with the recipe's launcher, for a machine with or without
    CUDA. `trainer_bin` is the trainer env's bin/ (axolotl, accelerate, torchrun live
    there), `path` the PATH it goes in front of, `cpu_threads` the cores to share out
    between CPU processes (None: leave the thread count alone)."""
    launcher, processes = distributed.launcher, distributed.processes
    argv = [str(trainer_bin / "axolotl"), "train", str(config), "--launcher", launcher]
    env = {"PATH": os.pathsep.join(filter(None, [str(trainer_bin), path]))}
    if launcher == "torchrun":
        if not cuda:
            raise ValueError(_torchrun_without_cuda(processes))
        argv += ["--", "--standalone", "--nnodes", "1", "--nproc_per_node", str(processes)]
    elif launcher == "accelerate":
        argv += ["--", "--num_processes", str(processes), "--num_machines", "1"]
        argv += ["--mixed_precision", "no", "--dynamo_backend", "no"]
        if processes > 1:  # port 0: a free one, so that two trainings never collide
            argv += ["--multi_gpu", "--main_process_port", "0"]
        elif not cuda:
            argv += ["--cpu"]
        if not cuda:
            env["ACCELERATE_USE_CPU"] = "true"
    if not cuda and processes > 1 and cpu_threads:
        env["OMP_NUM_THREADS"] = str(max(1, cpu_threads // processes))
    return AxolotlCommand(argv, env)


def launch_file(config: Path) -> Path:
    """Where the launch command of the Axolotl config `config` is kept."""
    return config.with_name(LAUNCH_FILE)


def write_launch_file(command: AxolotlCommand, config: Path) -> Path:
    path = launch_file(config)
    path.write_text(json.dumps(command._asdict(), indent=2) + "\n", encoding="utf-8")
    return path


def read_launch_file(config: Path) -> AxolotlCommand:
    data = json.loads(launch_file(config).read_text(encoding="utf-8"))
    return AxolotlCommand(list(data["argv"]), dict(data["env"]))
