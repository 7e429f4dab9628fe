"""The `train` section and its sub-sections (dpo, distill, rehearsal, distributed, fsdp)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipelines.recipe.base import Section


class DpoSection(Section):
    """Direct preference optimisation; read only when `train.method` is `dpo`."""

    beta: float = Field(
        default=0.1,
        gt=0.0,
        le=10.0,
        description="DPO temperature: how far from the reference to move.",
    )
    pairs: Literal["data", "on_policy"] = Field(
        default="on_policy",
        description=(
            "data: the rows are preference pairs (data.format: preference); on_policy: the "
            "gold answer is chosen and the base model's own wrong answer is rejected."
        ),
    )
    sft_weight: float = Field(
        default=0.0,
        ge=0.0,
        le=100.0,
        description=(
            "Add the chosen answers' language-model loss with this weight (RPO). Pure DPO can "
            "lower the chosen answers' likelihood too, only less than the rejected ones'; "
            "the added term keeps the model producing the chosen answers."
        ),
    )


class DistillSection(Section):
    """The teacher whose answers the adapter imitates, for `train.method: distill`."""

    teacher: str = Field(
        description=(
            "A local model or adapter folder, models:/<name>@<alias>, or the URL of an "
            "OpenAI-compatible endpoint (http://host:port/v1)."
        )
    )
    teacher_model: str | None = Field(
        default=None, description="Model name sent to an HTTP teacher endpoint."
    )
    api_key_env: str | None = Field(
        default=None,
        description="Environment variable holding the HTTP teacher's API key (never logged).",
    )
    max_new_tokens: int = Field(
        default=128, gt=0, le=32_768, description="Teacher's answer budget."
    )
    temperature: float = Field(
        default=0.0, ge=0.0, le=2.0, description="Teacher sampling temperature."
    )


class RehearsalSection(Section):
    """Self-rehearsal against forgetting: the base model's own answers to unrelated prompts
    join the training rows, without the recipe's system prompt, so the adapter learns to
    change the model's behaviour for the task only and to leave other requests alone."""

    source: str = Field(
        description="File of unrelated prompts, relative to the repository root (under data/): "
        ".jsonl, .csv or .parquet."
    )
    field: str = Field(description="The field or column holding one prompt's text.")
    rows: int = Field(
        gt=0, le=1_000_000, description="How many prompts (a deterministic sample by hash)."
    )
    max_new_tokens: int = Field(
        default=96, gt=0, le=32_768, description="The base model's answer budget."
    )


class DistributedSection(Section):
    """How `axolotl train` is launched: one process, or data-parallel copies of the
    training (DDP) that each take a share of every batch and average their gradients.

    Rules: `processes` above 1 needs `launcher: accelerate` or `torchrun`. On a machine
    without CUDA only `accelerate` runs several processes (rung starts them with
    accelerate's CPU setting, so they synchronise over gloo); `torchrun` there is
    refused when training starts, since its copies would not synchronise. Each process
    takes `micro_batch_size` rows per step: N processes make the total batch N times
    larger and an epoch N times fewer optimizer steps."""

    launcher: Literal["python", "accelerate", "torchrun"] = Field(
        default="python",
        description=(
            "python: one process, no launcher; accelerate: `accelerate launch` (CPU or "
            "GPU); torchrun: `torchrun --standalone` (GPU only)."
        ),
    )
    processes: int = Field(
        default=1,
        ge=1,
        le=1024,
        description="Training processes on this machine (one per GPU on a GPU machine).",
    )

    @model_validator(mode="after")
    def _launcher_runs_the_processes(self) -> DistributedSection:
        if self.processes > 1 and self.launcher == "python":
            raise ValueError(
                f"processes: {self.processes} needs launcher: accelerate or torchrun "
                "(launcher: python starts one process)"
            )
        return self


class FsdpSection(Section):
    """Fully sharded data parallel (FSDP2, `fsdp_version: 2`): parameters, gradients and
    optimizer state are split across the processes. CUDA only."""

    wrap_layer: str | None = Field(
        default=None,
        description=(
            "The transformer layer class each FSDP unit wraps, e.g. LlamaDecoderLayer; "
            "default: from the base model's config.json (XForCausalLM -> XDecoderLayer)."
        ),
    )
    offload_params: bool = Field(
        default=False, description="Keep sharded parameters in CPU memory between uses."
    )
    activation_checkpointing: bool = Field(
        default=False,
        description="Recompute activations in the backward pass: less memory, more compute.",
    )
    reshard_after_forward: bool = Field(
        default=True,
        description="Free the gathered parameters after each forward pass (ZeRO-3-like).",
    )


class TrainSection(Section):
    """The training method, the LoRA adapter and the optimizer (rendered into Axolotl's
    config). Rules that tie `train` to `data` are listed under the whole recipe."""

    method: Literal["sft", "dpo", "distill"] = Field(
        default="sft",
        description=(
            "sft: imitate the answers; dpo: prefer chosen over rejected answers (preference "
            "pairs); distill: imitate a teacher's answers to the training prompts."
        ),
    )
    adapter: Literal["lora", "qlora"] = Field(
        default="lora", description="PEFT adapter; qlora loads the base in 4 bits (CUDA only)."
    )
    init_adapter: str | None = Field(
        default=None,
        description=(
            "Start from this LoRA adapter instead of a fresh one: a local adapter folder or "
            "models:/<name>@<alias> (e.g. DPO on top of the SFT champion)."
        ),
    )
    dpo: DpoSection = Field(
        default_factory=lambda: DpoSection(),
        description="DPO settings, for method: dpo (ignored by the other methods).",
    )
    distill: DistillSection | None = Field(
        default=None, description="The teacher, for method: distill."
    )
    rehearsal: RehearsalSection | None = Field(
        default=None,
        description="Mix the base model's own answers to unrelated prompts into training "
        "(sft, distill), against forgetting; checked by the forgetting probes.",
    )
    lora_r: int = Field(default=8, gt=0, le=512, description="LoRA rank.")
    lora_alpha: int = Field(default=16, gt=0, le=4096, description="LoRA scaling numerator.")
    lora_dropout: float = Field(default=0.05, ge=0.0, lt=1.0, description="LoRA dropout.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: ["q_proj", "v_proj"],
        description="Modules that get adapters, or 'all-linear'.",
    )
    learning_rate: float = Field(default=5e-4, gt=0.0, lt=1.0, description="Peak learning rate.")
    lr_scheduler: Literal["cosine", "linear", "constant"] = Field(
        default="cosine", description="Learning-rate schedule."
    )
    warmup_steps: int = Field(default=0, ge=0, le=1_000_000, description="Linear warm-up steps.")
    num_epochs: float = Field(
        default=1.0, gt=0.0, le=1000.0, description="Passes over the training split."
    )
    max_steps: int | None = Field(
        default=None,
        gt=0,
        le=10_000_000,
        description="Stop after this many optimizer steps (overrides epochs).",
    )
    micro_batch_size: int = Field(default=4, gt=0, le=4096, description="Rows per forward pass.")
    gradient_accumulation_steps: int = Field(
        default=1, gt=0, le=4096, description="Passes per step."
    )
    sequence_len: int = Field(
        default=256,
        ge=32,
        le=1_048_576,
        description="Maximum tokens per row (at most 1M: beyond any model's context).",
    )
    sample_packing: bool = Field(
        default=False, description="Pack short rows into one sequence (pays off on GPU)."
    )
    logging_steps: int = Field(
        default=5, gt=0, le=1_000_000, description="Log train loss every N steps."
    )
    seed: int = Field(default=42, ge=0, le=2**32 - 1, description="Training seed.")
    checkpoint_steps: int | None = Field(
        default=25,
        gt=0,
        le=1_000_000,
        description="Save a resumable checkpoint every N steps (null: never); a killed "
        "training resumes from the last one when its inputs are unchanged. Not with "
        "deepspeed or fsdp (sharded checkpoints are not resumed yet).",
    )
    distributed: DistributedSection = Field(
        default_factory=lambda: DistributedSection(),
        description="The launcher and the number of training processes (data parallel).",
    )
    deepspeed: Literal["zero2", "zero3"] | None = Field(
        default=None,
        description=(
            "DeepSpeed ZeRO stage 2 (optimizer state and gradients sharded) or 3 (parameters "
            "too), with the config rung ships (pipelines/lib/deepspeed/). CUDA only; needs "
            "distributed.launcher accelerate or torchrun and `axolotl[deepspeed]` in the "
            "trainer env; not with fsdp."
        ),
    )
    fsdp: FsdpSection | None = Field(
        default=None,
        description=(
            "Shard the model with FSDP2. CUDA only; needs distributed.launcher accelerate or "
            "torchrun; not with deepspeed."
        ),
    )

    @property
    def checkpoints(self) -> bool:
        """Resumable checkpoints are saved (not for sharded trainings: their optimizer
        state is saved per rank, which lib/checkpoints.py does not check yet)."""
        return bool(self.checkpoint_steps) and not (self.deepspeed or self.fsdp)

    @model_validator(mode="after")
    def _sharding_has_a_launcher(self) -> TrainSection:
        if self.deepspeed and self.fsdp:
            raise ValueError("deepspeed and fsdp both shard the model: pick one")
        sharding = "deepspeed" if self.deepspeed else "fsdp" if self.fsdp else None
        if sharding and self.distributed.launcher == "python":
            raise ValueError(
                f"{sharding} needs distributed.launcher: accelerate or torchrun "
                "(launcher: python starts no distributed backend)"
            )
        return self
