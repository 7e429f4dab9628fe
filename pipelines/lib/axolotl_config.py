"""Render a recipe into a complete Axolotl YAML (the file saved with every run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from pipelines.recipe import TrainSection
from pipelines.recipe.train import FsdpSection

if TYPE_CHECKING:  # never imported here (it needs Axolotl), but part of this module's code:
    from pipelines.worker import axolotl_guard, axolotl_seed  # noqa: F401  code versions see them

# pipelines/worker/axolotl_*.py, importable in the trainer env (PYTHONPATH = repo).
SEED_PLUGIN = "pipelines.worker.axolotl_seed.SeedPlugin"
# Stops a training whose loss or gradient norm is NaN/inf and records why (divergence.json).
GUARD_PLUGIN = "pipelines.worker.axolotl_guard.DivergenceGuardPlugin"
# The DeepSpeed configs rung ships (train.deepspeed: zero2 | zero3); Axolotl's own are not
# in its wheel.
DEEPSPEED_CONFIGS = Path(__file__).parent / "deepspeed"
# max_memory for several CPU processes (see _cpu_processes): a budget any model fits, not
# a reservation.
CPU_MEMORY_CAP = "1024GiB"


def render_axolotl_config(
    train: TrainSection,
    *,
    base_model_dir: Path,
    train_file: Path,
    output_dir: Path,
    mlflow_tracking_uri: str,
    mlflow_experiment: str,
    init_adapter_dir: Path | None = None,
    cuda: bool = False,
    resume_from: Path | None = None,
) -> dict[str, Any]:
    """Every path absolute; nothing left to Axolotl's defaults that matters to the result.
    `cuda`: whether the machine that trains has CUDA (several CPU processes need a fix)."""
    targets: dict[str, Any] = (
        {"lora_target_linear": True}
        if train.target_modules == "all-linear"
        else {"lora_target_modules": list(train.target_modules)}
    )
    steps: dict[str, Any] = {"num_epochs": train.num_epochs}
    if train.max_steps is not None:
        steps["max_steps"] = train.max_steps
    config = {
        "base_model": str(base_model_dir),
        "model_type": "AutoModelForCausalLM",
        "tokenizer_type": "AutoTokenizer",
        "chat_template": "tokenizer_default",
        "datasets": [_dataset(train, train_file)],
        # Held-out rows never reach the trainer: evaluation scores them separately.
        "val_set_size": 0.0,
        "dataset_prepared_path": str(output_dir / "prepared"),
        "output_dir": str(output_dir / "out"),
        "sequence_len": train.sequence_len,
        # The data stage already dropped (and counted) every row over sequence_len, with
        # this tokenizer and template: a longer row here is a bug, never a silent drop.
        "excess_length_strategy": "raise",
        "sample_packing": train.sample_packing,
        "pad_to_sequence_len": False,
        "adapter": train.adapter,
        "lora_r": train.lora_r,
        "lora_alpha": train.lora_alpha,
        "lora_dropout": train.lora_dropout,
        **targets,
        # Axolotl turns on Triton LoRA kernels by itself; they need CUDA.
        "lora_mlp_kernel": False,
        "lora_qkv_kernel": False,
        "lora_o_kernel": False,
        "lora_embedding_kernel": False,
        "micro_batch_size": train.micro_batch_size,
        "gradient_accumulation_steps": train.gradient_accumulation_steps,
        **steps,
        "optimizer": "adamw_torch",
        "lr_scheduler": train.lr_scheduler,
        "learning_rate": train.learning_rate,
        "warmup_steps": train.warmup_steps,
        "bf16": False,
        "fp16": False,
        "tf32": False,
        "logging_steps": train.logging_steps,
        # checkpoints only to resume a killed training (lib/checkpoints.py); two kept in
        # case a kill lands in the middle of a save
        **(
            {"save_strategy": "steps", "save_steps": train.checkpoint_steps, "save_total_limit": 2}
            if train.checkpoints
            else {"save_strategy": "no"}
        ),
        **({"resume_from_checkpoint": str(resume_from)} if resume_from else {}),
        "seed": train.seed,
        # Seeds the adapter's initial weights too (Axolotl seeds only the Trainer, later):
        # without it two runs of the same recipe train different adapters. The guard stops
        # a training that diverged (NaN/inf) instead of saving an adapter of NaNs.
        "plugins": [SEED_PLUGIN, GUARD_PLUGIN],
        "dataloader_num_workers": 0,
        # Training metrics go to the MLflow run the pipeline created (MLFLOW_RUN_ID).
        "use_mlflow": True,
        "mlflow_tracking_uri": mlflow_tracking_uri,
        "mlflow_experiment_name": mlflow_experiment,
        "hf_mlflow_log_artifacts": False,
    }
    if train.method == "dpo":
        # Pairs, not packed sequences; the frozen base (adapter off) is the DPO reference.
        config.update(rl="dpo", rl_beta=train.dpo.beta, sample_packing=False)
        if train.dpo.sft_weight:  # RPO: DPO plus the NLL of the chosen answers (TRL's "sft")
            config.update(
                dpo_loss_type=["sigmoid", "sft"], dpo_loss_weights=[1.0, train.dpo.sft_weight]
            )
    if train.adapter == "qlora":  # 4-bit base weights through bitsandbytes: CUDA only
        # bf16 "auto": compute in bf16 where the GPU has it (QLoRA never runs on a CPU).
        config.update(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bf16="auto",
        )
    if init_adapter_dir is not None:
        config["lora_model_dir"] = str(init_adapter_dir)
    if train.distributed.processes > 1 and not cuda:
        config.update(_cpu_processes())
    if train.deepspeed:
        config["deepspeed"] = str(DEEPSPEED_CONFIGS / f"{train.deepspeed}.json")
    if train.fsdp:
        config.update(_fsdp(train.fsdp, base_model_dir))
    return config


def _cpu_processes() -> dict[str, Any]:
    """With WORLD_SIZE > 1, Axolotl 0.19 sets device_map to {"": LOCAL_RANK}, an accelerator
    index that a machine without one cannot resolve ("Cannot access accelerator device").
    A max_memory makes it compute the map from the memory budgets instead: CPU only, so
    every process loads the whole model on the CPU (DDP keeps a full copy per process)."""
    return {"max_memory": {"cpu": CPU_MEMORY_CAP}}


def _fsdp(fsdp: FsdpSection, base_model_dir: Path) -> dict[str, Any]:
    """FSDP2 as Axolotl 0.19 reads it: top-level fsdp_version, unprefixed fsdp_config keys."""
    return {
        "fsdp_version": 2,
        "fsdp_config": {
            "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "transformer_layer_cls_to_wrap": fsdp.wrap_layer or _decoder_layer(base_model_dir),
            "offload_params": fsdp.offload_params,
            "activation_checkpointing": fsdp.activation_checkpointing,
            "reshard_after_forward": fsdp.reshard_after_forward,
            # One whole adapter file at the end, like every other run.
            "state_dict_type": "FULL_STATE_DICT",
        },
    }


def _decoder_layer(base_model_dir: Path) -> str:
    """The decoder layer class of a Hugging Face causal LM: LlamaForCausalLM ->
    LlamaDecoderLayer (the naming transformers uses for its decoder models)."""
    config_file = base_model_dir / "config.json"
    architectures = []
    if config_file.is_file():
        architectures = json.loads(config_file.read_text()).get("architectures") or []
    if len(architectures) == 1 and architectures[0].endswith("ForCausalLM"):
        return architectures[0].removesuffix("ForCausalLM") + "DecoderLayer"
    raise ValueError(
        f"train.fsdp: cannot tell the decoder layer class of {base_model_dir} from its "
        f"config.json (architectures: {architectures}); set train.fsdp.wrap_layer"
    )


def _dataset(train: TrainSection, train_file: Path) -> dict[str, Any]:
    if train.method == "dpo":
        return {
            "path": str(train_file),
            "ds_type": "json",
            "split": "train",
            "type": "chat_template.default",
            "field_messages": "messages",
            "field_chosen": "chosen",
            "field_rejected": "rejected",
        }
    return {
        "path": str(train_file),
        "ds_type": "json",
        "type": "chat_template",
        "field_messages": "messages",
        "roles_to_train": ["assistant"],
    }


def write_axolotl_config(config: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Rendered by rung from the recipe; run with: axolotl train <this file>\n"
    path.write_text(header + yaml.safe_dump(config, sort_keys=False))
    return path
