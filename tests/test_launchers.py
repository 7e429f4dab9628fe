import json
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipelines import paths
from pipelines.lib import launchers, trainer_env
from pipelines.lib.asset_values import StageError
from pipelines.lib.launchers import axolotl_command, refusal
from pipelines.lib.offline import OFFLINE_ENV
from pipelines.recipe import TrainSection, load_recipe
from pipelines.recipe.train import DistributedSection

BIN = Path("/envs/train/bin")
CONFIG = Path("/runs/r/training_run/axolotl.yml")
AXOLOTL = [str(BIN / "axolotl"), "train", str(CONFIG)]


def command(launcher: str, processes: int = 1, *, cuda: bool, cpu_threads: int | None = 16):
    distributed = DistributedSection(launcher=launcher, processes=processes)
    return axolotl_command(
        BIN, CONFIG, distributed, cuda, path="/usr/bin:/bin", cpu_threads=cpu_threads
    )


def launcher_args(argv: list[str]) -> list[str]:
    return argv[argv.index("--") + 1 :]


def test_one_plain_process_is_axolotl_with_the_python_launcher():
    argv, env = command("python", cuda=False)
    assert argv == [*AXOLOTL, "--launcher", "python"]
    assert env == {"PATH": "/envs/train/bin:/usr/bin:/bin"}  # the trainer env's bin/ first
    assert command("python", cuda=True) == (argv, env)  # the same everywhere


def test_accelerate_on_a_cpu_starts_several_processes_that_sync_over_gloo():
    argv, env = command("accelerate", 2, cuda=False)
    assert argv[:5] == [*AXOLOTL, "--launcher", "accelerate"]
    args = launcher_args(argv)
    assert args[:8] == ["--num_processes", "2", "--num_machines", "1"] + [
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    ]
    # --cpu would make accelerate start ONE process: several come from its
    # torch.distributed.run launcher, told to use the CPU through the environment.
    assert "--multi_gpu" in args and "--cpu" not in args
    assert args[args.index("--main_process_port") + 1] == "0"  # a free port
    assert env["ACCELERATE_USE_CPU"] == "true"
    assert env["OMP_NUM_THREADS"] == "8"  # 16 cores shared by 2 processes
    assert env["PATH"].startswith("/envs/train/bin:")


def test_accelerate_with_one_cpu_process_uses_its_cpu_flag():
    argv, env = command("accelerate", 1, cuda=False)
    args = launcher_args(argv)
    assert "--cpu" in args and "--multi_gpu" not in args
    assert args[args.index("--num_processes") + 1] == "1"
    assert env["ACCELERATE_USE_CPU"] == "true" and "OMP_NUM_THREADS" not in env


def test_accelerate_on_gpus_runs_one_process_per_gpu_without_cpu_settings():
    argv, env = command("accelerate", 4, cuda=True)
    args = launcher_args(argv)
    assert args[args.index("--num_processes") + 1] == "4"
    assert "--multi_gpu" in args and "--cpu" not in args
    assert set(env) == {"PATH"}
    single, _ = command("accelerate", 1, cuda=True)
    assert "--multi_gpu" not in single and "--cpu" not in single


def test_torchrun_on_gpus_is_standalone_with_one_process_per_gpu():
    argv, env = command("torchrun", 2, cuda=True)
    assert argv[3:5] == ["--launcher", "torchrun"]
    assert launcher_args(argv) == ["--standalone", "--nnodes", "1", "--nproc_per_node", "2"]
    assert set(env) == {"PATH"}


def test_torchrun_without_cuda_is_refused_not_rendered():
    with pytest.raises(ValueError, match="unsynchronised copies"):
        command("torchrun", 2, cuda=False)


def test_cpu_threads_are_left_alone_when_not_given():
    _, env = command("accelerate", 2, cuda=False, cpu_threads=None)
    assert "OMP_NUM_THREADS" not in env
    _, env = command("accelerate", 4, cuda=False, cpu_threads=2)
    assert env["OMP_NUM_THREADS"] == "1"  # never zero


def test_refusals_on_a_machine_without_cuda_say_what_to_do():
    torchrun = TrainSection(distributed={"launcher": "torchrun", "processes": 2})
    message = refusal(torchrun, cuda=False)
    assert "2 unsynchronised copies" in message and "launcher: accelerate" in message
    for sharded, name in [
        (TrainSection(distributed={"launcher": "accelerate"}, deepspeed="zero2"), "deepspeed"),
        (TrainSection(distributed={"launcher": "torchrun"}, deepspeed="zero3"), "deepspeed"),
        (TrainSection(distributed={"launcher": "accelerate"}, fsdp={}), "fsdp"),
    ]:
        message = refusal(sharded, cuda=False)
        assert f"train.{name}" in message and "CUDA" in message and "GPU machine" in message
        assert refusal(sharded, cuda=True) is None
    assert refusal(torchrun, cuda=True) is None
    for fine in [
        TrainSection(),
        TrainSection(distributed={"launcher": "accelerate", "processes": 2}),
    ]:
        assert refusal(fine, cuda=False) is None


def test_only_launches_beyond_one_plain_process_ask_whether_there_is_cuda():
    assert not launchers.depends_on_cuda(TrainSection())
    assert launchers.depends_on_cuda(TrainSection(distributed={"launcher": "accelerate"}))


def test_the_recipe_refuses_launchers_that_cannot_run_what_it_asks():
    with pytest.raises(ValidationError, match="needs launcher: accelerate or torchrun"):
        TrainSection(distributed={"processes": 2})
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        TrainSection(distributed={"launcher": "accelerate", "processes": 0})
    with pytest.raises(ValidationError, match="deepspeed needs distributed.launcher"):
        TrainSection(deepspeed="zero2")
    with pytest.raises(ValidationError, match="fsdp needs distributed.launcher"):
        TrainSection(fsdp={})
    with pytest.raises(ValidationError, match="pick one"):
        TrainSection(distributed={"launcher": "accelerate"}, deepspeed="zero3", fsdp={})
    with pytest.raises(ValidationError):
        TrainSection(deepspeed="zero1", distributed={"launcher": "accelerate"})
    assert TrainSection().distributed == DistributedSection(launcher="python", processes=1)


def test_the_launch_file_round_trips(tmp_path):
    config = tmp_path / "axolotl.yml"
    rendered = command("accelerate", 2, cuda=False)
    written = launchers.write_launch_file(rendered, config)
    assert written == tmp_path / "launch.json"
    assert launchers.read_launch_file(config) == rendered
    assert json.loads(written.read_text())["argv"] == rendered.argv


def test_the_training_stage_refuses_deepspeed_on_a_cpu_before_any_run(tmp_path, monkeypatch):
    from pipelines.lib.training_stage import train_adapter

    recipe_file = tmp_path / "ds-on-cpu.yaml"
    recipe_file.write_text(
        "data:\n"
        "  sources: [data/address/addresses.jsonl]\n"
        "  fields: {prompt: address, completion: fields}\n"
        "train:\n"
        "  distributed: {launcher: accelerate, processes: 2}\n"
        "  deepspeed: zero2\n"
    )
    monkeypatch.setattr(trainer_env, "cuda_available", lambda: False)

    def launch(*args):
        raise AssertionError("a refused recipe must not reach the trainer")

    with pytest.raises(StageError, match=r"recipe ds-on-cpu: train.deepspeed: zero2 needs CUDA"):
        # Nothing but the recipe is read before the refusal: no MLflow run, no config.
        train_adapter(
            load_recipe(recipe_file), None, None, None, None, tmp_path, launch, dagster_run_id="x"
        )
    assert not any(tmp_path.glob("*.yml"))


def test_the_worker_keeps_dagster_pipes_to_itself(monkeypatch):
    from pipelines.worker.train import trainer_environment

    monkeypatch.setenv("DAGSTER_PIPES_CONTEXT", "ctx")
    monkeypatch.setenv("DAGSTER_PIPES_MESSAGES", "msgs")
    monkeypatch.setenv("MLFLOW_RUN_ID", "run-1")
    env = trainer_environment({"ACCELERATE_USE_CPU": "true", "PATH": "/envs/train/bin:/bin"})
    assert not any(key.startswith("DAGSTER_PIPES_") for key in env)
    assert env["MLFLOW_RUN_ID"] == "run-1"  # rank 0's MLflow callback logs into the run
    assert env["ACCELERATE_USE_CPU"] == "true" and env["PATH"] == "/envs/train/bin:/bin"


# accelerate's and torchrun's own argument parsers, in the trainer env: the flags exist and
# select the launcher they are meant to (several processes, or one on the CPU).
PARSE_LAUNCHER_ARGS = """
import json, sys
from accelerate.commands.launch import launch_command_parser
from torch.distributed.run import get_args_parser
cases = json.loads(sys.argv[1])
out = {}
for name, args in cases["accelerate"].items():
    a = launch_command_parser().parse_args(args + ["-m", "axolotl.cli.train", "cfg.yml"])
    out[name] = {"multi_gpu": a.multi_gpu, "cpu": a.cpu, "num_processes": a.num_processes,
                 "num_machines": a.num_machines, "port": a.main_process_port}
for name, args in cases["torchrun"].items():
    a = get_args_parser().parse_args(args + ["-m", "axolotl.cli.train", "cfg.yml"])
    out[name] = {"standalone": a.standalone, "nproc_per_node": a.nproc_per_node,
                 "nnodes": a.nnodes}
print(json.dumps(out))
"""


def test_the_launcher_flags_mean_what_rung_intends_to_their_own_parsers():
    cases = {
        "accelerate": {
            "cpu-2": launcher_args(command("accelerate", 2, cuda=False).argv),
            "cpu-1": launcher_args(command("accelerate", 1, cuda=False).argv),
            "gpu-4": launcher_args(command("accelerate", 4, cuda=True).argv),
        },
        "torchrun": {"gpu-2": launcher_args(command("torchrun", 2, cuda=True).argv)},
    }
    done = subprocess.run(
        [str(paths.TRAINER_PYTHON), "-c", PARSE_LAUNCHER_ARGS, json.dumps(cases)],
        capture_output=True,
        text=True,
        env={**OFFLINE_ENV, "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    parsed = json.loads(done.stdout.strip().splitlines()[-1])
    assert parsed["cpu-2"] == {
        "multi_gpu": True,  # accelerate's multi-process launcher (torch.distributed.run)
        "cpu": False,
        "num_processes": 2,
        "num_machines": 1,
        "port": 0,
    }
    assert parsed["cpu-1"]["cpu"] is True and parsed["cpu-1"]["num_processes"] == 1
    assert parsed["gpu-4"]["multi_gpu"] is True and parsed["gpu-4"]["num_processes"] == 4
    assert parsed["gpu-2"] == {"standalone": True, "nproc_per_node": "2", "nnodes": "1"}
