from pathlib import Path

import yaml

from pipelines.lib.axolotl_config import render_axolotl_config, write_axolotl_config
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


def test_the_seed_plugin_is_rendered_and_importable_where_axolotl_runs():
    import subprocess

    from pipelines import paths

    (plugin,) = render()["plugins"]
    module, name = plugin.rsplit(".", 1)
    done = subprocess.run(
        [str(paths.TRAINER_PYTHON), "-c", f"import {module} as m; print(m.{name}.__name__)"],
        capture_output=True,
        text=True,
        cwd=paths.REPO_ROOT,
        env={"PYTHONPATH": str(paths.REPO_ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == name
