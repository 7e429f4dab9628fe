"""Model inference for evaluation (trainer env): greedy generation and held-out loss.

One base model is loaded once; adapters (the tuned one, the registry's champion)
are attached by name and switched per request group, and the base model is the
same weights with adapters disabled. Generation is batched with left padding and
the KV cache, and stops at the model's end-of-turn token.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

BASE = "base"


class Models:
    """The base model plus named LoRA adapters, switchable per call."""

    def __init__(self, base_dir: str, adapters: dict[str, str] | None = None) -> None:
        torch.set_num_threads(os.cpu_count() or 1)
        torch.manual_seed(0)
        self.tokenizer = AutoTokenizer.from_pretrained(base_dir)
        self.tokenizer.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        self.adapters = dict(adapters or {})
        if self.adapters:
            from peft import PeftModel

            first, *rest = self.adapters.items()
            self.model = PeftModel.from_pretrained(self.model, first[1], adapter_name=first[0])
            for name, path in rest:
                self.model.load_adapter(path, adapter_name=name)
        self.model.eval()

    def parameter_counts(self) -> dict[str, int]:
        """Parameters each model runs with: the base, and base + each adapter."""
        base = sum(p.numel() for n, p in self.model.named_parameters() if "lora_" not in n)
        counts = {BASE: base}
        for name in self.adapters:
            marker = f".{name}."
            counts[name] = base + sum(
                p.numel() for n, p in self.model.named_parameters() if "lora_" in n and marker in n
            )
        return counts

    @contextlib.contextmanager
    def using(self, name: str) -> Iterator[None]:
        """Run the block with adapter `name` active, or with none for BASE."""
        if name == BASE:
            context = self.model.disable_adapter() if self.adapters else contextlib.nullcontext()
            with context:
                yield
            return
        if name not in self.adapters:
            raise KeyError(f"no adapter named {name!r}; loaded: {sorted(self.adapters)}")
        self.model.set_adapter(name)
        yield

    def prompt_text(self, messages: Sequence[dict]) -> str:
        return self.tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=True
        )

    def generate(
        self,
        conversations: Sequence[Sequence[dict]],
        max_new_tokens: int,
        batch_size: int,
        progress: Callable[[int], None] | None = None,
        costs: list[dict] | None = None,
    ) -> tuple[list[str], list[int]]:
        """Greedy answers and their token counts, in input order.

        Rows are batched by prompt length (less padding); the output order is the input order.
        `progress` is called with the number of rows answered after each batch. A `costs`
        list is filled, in input order, with each row's prompt tokens and seconds (its
        batch's time shared by the batch's rows): what one answer costs.
        """
        prompts = [self.prompt_text(messages) for messages in conversations]
        lengths = [len(self.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: (lengths[i], i))
        answers: list[str] = [""] * len(prompts)
        counts: list[int] = [0] * len(prompts)
        eos = self.tokenizer.eos_token_id
        seconds: list[float] = [0.0] * len(prompts)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            started = time.perf_counter()
            batch = self.tokenizer(
                [prompts[i] for i in chunk],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            )
            with torch.no_grad():
                output = self.model.generate(
                    **batch,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    eos_token_id=eos,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
            new_tokens = output[:, batch["input_ids"].shape[1] :]
            for row, tokens in zip(chunk, new_tokens):
                ended = (tokens == eos).nonzero()
                kept = tokens[: int(ended[0]) if len(ended) else len(tokens)]
                counts[row] = len(kept)
                answers[row] = self.tokenizer.decode(kept, skip_special_tokens=True).strip()
            for row in chunk:
                seconds[row] = (time.perf_counter() - started) / len(chunk)
            if progress is not None:
                progress(len(chunk))
        if costs is not None:
            costs[:] = [{"prompt_tokens": n, "seconds": t} for n, t in zip(lengths, seconds)]
        return answers, counts

    def heldout_loss(
        self, conversations: Sequence[Sequence[dict]], max_len: int, batch_size: int
    ) -> float:
        """Token-weighted mean cross-entropy on the assistant's tokens only."""
        encoded = []
        for messages in conversations:
            prompt_ids = self.tokenizer(self.prompt_text(messages[:-1]), add_special_tokens=False)[
                "input_ids"
            ]
            full = self.tokenizer.apply_chat_template(list(messages), tokenize=False)
            full_ids = self.tokenizer(full, add_special_tokens=False)["input_ids"][:max_len]
            encoded.append((full_ids, len(prompt_ids)))
        total, count, pad = 0.0, 0, self.tokenizer.pad_token_id
        for start in range(0, len(encoded), batch_size):
            batch = encoded[start : start + batch_size]
            width = max(len(ids) for ids, _ in batch)
            input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch])
            attention = torch.tensor(
                [[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch]
            )
            labels = input_ids.clone()
            for i, (ids, answer_start) in enumerate(batch):
                labels[i, :answer_start] = -100
                labels[i, len(ids) :] = -100
            with torch.no_grad():
                logits = self.model(input_ids=input_ids, attention_mask=attention).logits
            shifted, targets = logits[:, :-1].float(), labels[:, 1:]
            total += torch.nn.functional.cross_entropy(
                shifted.reshape(-1, shifted.size(-1)),
                targets.reshape(-1),
                ignore_index=-100,
                reduction="sum",
            ).item()
            count += int((targets != -100).sum())
        return total / max(count, 1)


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start
