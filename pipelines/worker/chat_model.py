"""The registered model: base model + LoRA adapter answering chat messages (MLflow pyfunc).

Logged as MLflow "models from code": this file is the model's code, so logging it
from the orchestrator imports nothing heavy (torch, transformers and peft are
imported in `load_context`, which runs only where the model is loaded: the trainer
environment, `mlflow models serve`). Self-contained on purpose: a served model
needs neither the repository nor its environment variables.

Artifacts: `adapter/` (adapter_model.safetensors + adapter_config.json) and
`base_model.json`, a pointer {id, path, sha256, weights: {file: sha256}} to the
base model's local folder; each weight file's sha256 is checked on load, so a
different base model is refused.

Input: one or more conversations, each a list of {role, content} messages
(`{"messages": [...]}` or a DataFrame with a `messages` column). Output: the
assistant's reply to each, greedy, as a list of strings. Param: max_new_tokens.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import mlflow
from mlflow.pyfunc import PythonModel

DEFAULT_MAX_NEW_TOKENS = 128
ROLES = {"system", "user", "assistant"}


def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def base_model_dir(pointer: dict[str, Any]) -> Path:
    """The recorded base model folder, or the same model in this machine's rung cache; the
    weight files must have the sha256 recorded at registration (`sha256sum` of each)."""
    candidates = [Path(pointer["path"])]
    cache = Path(os.environ.get("RUNG_CACHE_DIR", Path.home() / ".cache" / "rung"))
    candidates.append(cache / "models" / pointer["id"])
    for folder in dict.fromkeys(candidates):
        if (folder / "config.json").is_file() and all(
            (folder / name).is_file() and file_sha256(folder / name) == digest
            for name, digest in pointer["weights"].items()
        ):
            return folder
    raise RuntimeError(
        f"base model {pointer['id']!r} with the recorded weights ({', '.join(pointer['weights'])}"
        f", sha256 {pointer['sha256'][:12]}…) not found in "
        f"{' or '.join(str(c) for c in dict.fromkeys(candidates))}; prepare it (`make model`)"
    )


def conversations(model_input: Any) -> list[list[dict[str, str]]]:
    """Conversations from a DataFrame with a `messages` column, a dict, or a list."""
    if hasattr(model_input, "columns"):
        if "messages" not in model_input.columns:
            raise ValueError("input needs a 'messages' column of [{role, content}, ...]")
        cells = list(model_input["messages"])
    elif isinstance(model_input, dict):
        cells = [model_input["messages"]]
    else:
        cells = list(model_input)
    out = []
    for cell in cells:
        messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in cell]
        if not messages or any(m["role"] not in ROLES for m in messages):
            raise ValueError(f"each message needs a role in {sorted(ROLES)} and a content")
        out.append(messages)
    return out


class ChatAdapterModel(PythonModel):
    def load_context(self, context: Any) -> None:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(os.cpu_count() or 1)
        pointer = json.loads(Path(context.artifacts["base_model"]).read_text())
        folder = base_model_dir(pointer)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        # Merged into the base weights: the same function, no adapter overhead per token.
        tuned = PeftModel.from_pretrained(base, context.artifacts["adapter"])
        self.model = tuned.merge_and_unload().eval()

    def answer(self, messages: list[dict[str, str]], max_new_tokens: int) -> str:
        import torch

        ids = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        with torch.no_grad():
            output = self.model.generate(
                **ids,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=self.tokenizer.eos_token_id,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new_tokens = output[0, ids["input_ids"].shape[1] :]
        return self.tokenizer.decode(new_tokens, skip_special_tokens=True).strip()

    # No type hints here: MLflow would derive a signature from them; rung logs its own.
    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
        max_new_tokens = int((params or {}).get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS)
        return [self.answer(messages, max_new_tokens) for messages in conversations(model_input)]


mlflow.models.set_model(ChatAdapterModel())
