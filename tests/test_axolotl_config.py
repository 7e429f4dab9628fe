import json
from pathlib import Path

import pytest
import yaml

from pipelines.lib.axolotl_config import (
    GUARD_PLUGIN,
    SEED_PLUGIN,
    render_axolotl_config,
    write_axolotl_config,
)
from pipelines.recipe import TrainSection


def render(**train):
    return render_axolotl_config(
        TrainSection(**train),
        base_model_dir=Path("/models/base"),
        train_file=Path("/runs/r/split/train.jsonl"),
        output_dir=Path("/runs/r/training_run"),
        mlflow_tracking_uri="sqlite:////state/mlruns/mlflow.db",
        mlflow_experiment="rung",
    )


def test_recipe_settings_reach_axolotl():
    config = render(lora_r=16, lora_alpha=32, learning_rate=1e-3, micro_batch_size=2, seed=7)
    assert (config["lora_r"], config["lora_alpha"], config["learning_rate"]) == (16, 32, 1e-3)
    assert (config["micro_batch_size"], config["seed"]) == (2, 7)
    assert config["lora_target_modules"] == ["q_proj", "v_proj"]
    assert "max_steps" not in config


def test_checkpoints_are_saved_to_resume_and_a_resume_names_its_checkpoint():
    config = render()
    assert (config["save_strategy"], config["save_steps"], config["save_total_limit"]) == (
        "steps",
        25,
        2,
    )
    assert "resume_from_checkpoint" not in config
    assert render(checkpoint_steps=None)["save_strategy"] == "no"
    resumed = render_axolotl_config(
        TrainSection(),
        base_model_dir=Path("/models/base"),
        train_file=Path("/runs/r/split/train.jsonl"),
        output_dir=Path("/runs/r2/training_run"),
        mlflow_tracking_uri="sqlite:////state/mlruns/mlflow.db",
        mlflow_experiment="rung",
        resume_from=Path("/runs/r1/training_run/out/checkpoint-50"),
    )
    assert resumed["resume_from_checkpoint"] == "/runs/r1/training_run/out/checkpoint-50"
    assert resumed["output_dir"] == "/runs/r2/training_run/out"


def test_all_linear_and_max_steps():
    config = render(target_modules="all-linear", max_steps=3)
    assert config["lora_target_linear"] is True and "lora_target_modules" not in config
    assert config["max_steps"] == 3


def test_cpu_safe_and_offline_settings():
    config = render()
    assert not config["bf16"] and not config["fp16"]
    assert config["optimizer"] == "adamw_torch"
    for kernel in ("lora_mlp_kernel", "lora_qkv_kernel", "lora_o_kernel", "lora_embedding_kernel"):
        assert config[kernel] is False
    assert config["hf_mlflow_log_artifacts"] is False
    assert "load_in_4bit" not in config and "load_in_8bit" not in config


def test_paths_are_absolute_and_held_out_never_reaches_the_trainer():
    config = render()
    assert Path(config["base_model"]).is_absolute()
    assert all(Path(d["path"]).is_absolute() for d in config["datasets"])
    assert config["datasets"][0]["path"].endswith("train.jsonl")
    assert "test_datasets" not in config and config["val_set_size"] == 0.0


def test_written_file_round_trips(tmp_path):
    config = render(max_steps=5)
    path = write_axolotl_config(config, tmp_path / "axolotl.yml")
    assert yaml.safe_load(path.read_text()) == config


def test_the_plugins_are_rendered_and_importable_where_axolotl_runs():
    import subprocess

    from pipelines import paths

    plugins = render()["plugins"]
    assert plugins == [SEED_PLUGIN, GUARD_PLUGIN]
    imports = "; ".join(f"from {p.rsplit('.', 1)[0]} import {p.rsplit('.', 1)[1]}" for p in plugins)
    names = ", ".join(p.rsplit(".", 1)[1] + ".__name__" for p in plugins)
    done = subprocess.run(
        [str(paths.TRAINER_PYTHON), "-c", f"{imports}; print({names})"],
        capture_output=True,
        text=True,
        cwd=paths.REPO_ROOT,
        env={"PYTHONPATH": str(paths.REPO_ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "SeedPlugin DivergenceGuardPlugin"


def test_several_cpu_processes_load_the_model_on_the_cpu():
    ddp = {"distributed": {"launcher": "accelerate", "processes": 2}}
    # Axolotl maps the model to the process's accelerator index when WORLD_SIZE > 1; a
    # CPU-only max_memory makes it place the model on the CPU instead.
    assert render(**ddp)["max_memory"] == {"cpu": "1024GiB"}
    on_gpus = render_axolotl_config(
        TrainSection(**ddp),
        base_model_dir=Path("/models/base"),
        train_file=Path("/runs/r/split/train.jsonl"),
        output_dir=Path("/runs/r/training_run"),
        mlflow_tracking_uri="sqlite:////state/mlruns/mlflow.db",
        mlflow_experiment="rung",
        cuda=True,
    )
    assert "max_memory" not in on_gpus
    assert "max_memory" not in render(distributed={"launcher": "accelerate"})
    assert "max_memory" not in render()


def test_deepspeed_renders_the_shipped_zero_config():
    for stage in (2, 3):
        config = render(
            distributed={"launcher": "accelerate", "processes": 2}, deepspeed=f"zero{stage}"
        )
        path = Path(config["deepspeed"])
        assert path.is_absolute() and path.name == f"zero{stage}.json"
        shipped = json.loads(path.read_text())
        assert shipped["zero_optimization"]["stage"] == stage
        assert shipped["bf16"] == {"enabled": "auto"}  # follows the trainer's bf16 setting
        for key in (
            "train_batch_size",
            "train_micro_batch_size_per_gpu",
            "gradient_accumulation_steps",
        ):
            assert shipped[key] == "auto"  # Axolotl fills them from the recipe
        assert "fsdp_config" not in config and "max_memory" in config  # a CPU render
    assert "deepspeed" not in render()


def test_fsdp2_renders_as_axolotl_reads_it(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["Qwen2ForCausalLM"]}))
    config = render_axolotl_config(
        TrainSection(distributed={"launcher": "torchrun", "processes": 8}, fsdp={}),
        base_model_dir=tmp_path,
        train_file=Path("/runs/r/split/train.jsonl"),
        output_dir=Path("/runs/r/training_run"),
        mlflow_tracking_uri="sqlite:////state/mlruns/mlflow.db",
        mlflow_experiment="rung",
        cuda=True,
    )
    assert config["fsdp_version"] == 2 and "deepspeed" not in config
    assert config["fsdp_config"] == {
        "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "transformer_layer_cls_to_wrap": "Qwen2DecoderLayer",  # from config.json
        "offload_params": False,
        "activation_checkpointing": False,
        "reshard_after_forward": True,
        "state_dict_type": "FULL_STATE_DICT",
    }
    explicit = render(
        distributed={"launcher": "accelerate", "processes": 2},
        fsdp={"wrap_layer": "MyBlock", "offload_params": True},
    )["fsdp_config"]
    assert explicit["transformer_layer_cls_to_wrap"] == "MyBlock" and explicit["offload_params"]
    with pytest.raises(ValueError, match="set train.fsdp.wrap_layer"):
        render(distributed={"launcher": "accelerate"}, fsdp={})  # /models/base has no config


# Axolotl's own schema, in the trainer env, accepts what rung renders for the new keys.
VALIDATE_WITH_AXOLOTL = """
import json, sys
from axolotl.utils.config import validate_config
from axolotl.utils.dict import DictDefault
out = {}
for name, config in json.loads(open(sys.argv[1]).read()).items():
    valid = validate_config(DictDefault(config))
    out[name] = {k: valid.get(k) for k in ("deepspeed", "fsdp_version", "max_memory")}
    out[name]["wrap"] = (valid.get("fsdp_config") or {}).get("transformer_layer_cls_to_wrap")
print(json.dumps(out))
"""


def test_axolotl_accepts_the_distributed_settings(tmp_path):
    import subprocess

    from pipelines import paths
    from pipelines.lib.offline import OFFLINE_ENV

    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))

    def rendered(cuda: bool, **train):
        return render_axolotl_config(
            TrainSection(**train),
            base_model_dir=tmp_path,
            train_file=tmp_path / "train.jsonl",
            output_dir=tmp_path / "training_run",
            mlflow_tracking_uri="sqlite:////state/mlruns/mlflow.db",
            mlflow_experiment="rung",
            cuda=cuda,
        )

    accelerate = {"launcher": "accelerate", "processes": 2}
    configs = {
        "cpu_ddp": rendered(False, distributed=accelerate),
        "zero2": rendered(True, distributed=accelerate, deepspeed="zero2"),
        "zero3": rendered(
            True, distributed={"launcher": "torchrun", "processes": 2}, deepspeed="zero3"
        ),
        "fsdp": rendered(True, distributed=accelerate, fsdp={}),
    }
    configs_file = tmp_path / "configs.json"
    configs_file.write_text(json.dumps(configs))
    done = subprocess.run(
        [str(paths.TRAINER_PYTHON), "-c", VALIDATE_WITH_AXOLOTL, str(configs_file)],
        capture_output=True,
        text=True,
        cwd=paths.REPO_ROOT,
        env={**OFFLINE_ENV, "PYTHONPATH": str(paths.REPO_ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    valid = json.loads(done.stdout.strip().splitlines()[-1])
    assert valid["cpu_ddp"]["max_memory"] == {"cpu": "1024GiB"}
    assert valid["zero2"]["deepspeed"].endswith("zero2.json")
    assert valid["zero3"]["deepspeed"].endswith("zero3.json")
    assert valid["fsdp"]["fsdp_version"] == 2 and valid["fsdp"]["wrap"] == "LlamaDecoderLayer"
