"""How a stage asks local models for answers without knowing how they are run.

The asset layer passes an `Infer` callable (a Dagster Pipes round trip to the trainer
environment's pipelines/worker/evaluate.py); tests pass a stand-in. Requests are
{"key", "model", "messages", "max_new_tokens"}; `model` names the base model ("base")
or one of the `adapters`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Inference:
    answers: dict[str, str]  # request key -> generated text
    losses: dict[str, float] = field(default_factory=dict)  # model -> mean held-out loss
    timings: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> seconds, tokens
    parameters: dict[str, int] = field(default_factory=dict)  # model -> parameter count
    # request key -> {"prompt_tokens", "seconds"}: what each answer cost (its batch's time
    # shared by the batch's rows)
    costs: dict[str, dict[str, float]] = field(default_factory=dict)


class Infer(Protocol):
    def __call__(
        self,
        requests: list[dict[str, Any]],
        adapters: dict[str, str],
        *,
        mlflow_run_id: str | None = None,
        loss: dict[str, Any] | None = None,
    ) -> Inference:
        """Answer `requests`; `loss` optionally asks for held-out loss:
        {"heldout_file", "models", "sequence_len"}."""
        ...
