"""Score the base model and the tuned adapter on held-out rows (trainer env, Dagster Pipes).

Held-out loss is the mean cross-entropy over the assistant's tokens only (the
prompt is context, not target), with the exact chat template used in training.
A few held-out rows are answered by greedy generation, by both models, so a
person can see the change.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from dagster_pipes import open_dagster_pipes


def _load(base_dir: str, adapter_dir: str):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adapter_dir)
    model.eval()
    return tokenizer, model


def _encode(tokenizer, messages: list[dict], max_len: int) -> tuple[list[int], int]:
    """Token ids of the whole conversation and where the assistant's answer starts."""
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    return full_ids[:max_len], len(prompt_ids)


def heldout_loss(tokenizer, model, rows: list[dict], max_len: int, batch_size: int) -> float:
    """Token-weighted mean loss on the assistant tokens of every held-out row."""
    import torch

    total, count = 0.0, 0
    encoded = [_encode(tokenizer, row["messages"], max_len) for row in rows]
    for start in range(0, len(encoded), batch_size):
        batch = encoded[start : start + batch_size]
        width = max(len(ids) for ids, _ in batch)
        pad = tokenizer.pad_token_id
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch])
        attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
        labels = input_ids.clone()
        for i, (ids, answer_start) in enumerate(batch):
            labels[i, :answer_start] = -100
            labels[i, len(ids) :] = -100
        with torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=attention).logits
        shift_logits, shift_labels = logits[:, :-1].float(), labels[:, 1:]
        losses = torch.nn.functional.cross_entropy(
            shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1),
            ignore_index=-100, reduction="sum",
        )
        total += losses.item()
        count += int((shift_labels != -100).sum())
    return total / max(count, 1)


def generate(tokenizer, model, rows: list[dict], max_new_tokens: int) -> list[str]:
    """Greedy answers, batched with left padding, stopping at end-of-turn."""
    import torch

    tokenizer.padding_side = "left"
    prompts = [
        tokenizer.apply_chat_template(r["messages"][:-1], tokenize=False, add_generation_prompt=True)
        for r in rows
    ]
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        output = model.generate(
            **batch, max_new_tokens=max_new_tokens, do_sample=False,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        )
    new_tokens = output[:, batch["input_ids"].shape[1] :]
    return [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


def main() -> None:
    with open_dagster_pipes() as context:
        extras = context.extras
        rows = [json.loads(line) for line in Path(extras["heldout_file"]).read_text().splitlines()]
        tokenizer, model = _load(extras["base_model_dir"], extras["adapter_dir"])
        max_len, batch_size = extras["sequence_len"], extras["batch_size"]

        context.log.info(f"held-out loss of the tuned model on {len(rows)} rows")
        tuned_loss = heldout_loss(tokenizer, model, rows, max_len, batch_size)
        context.log.info("held-out loss of the base model (adapter disabled)")
        with model.disable_adapter():
            base_loss = heldout_loss(tokenizer, model, rows, max_len, batch_size)

        sample_rows = rows[: extras["num_samples"]]
        samples = []
        if sample_rows:
            context.log.info(f"generating {len(sample_rows)} sample answers with each model")
            tuned = generate(tokenizer, model, sample_rows, extras["max_new_tokens"])
            with model.disable_adapter():
                base = generate(tokenizer, model, sample_rows, extras["max_new_tokens"])
            samples = [
                {"prompt": r["messages"][-2]["content"], "reference": r["messages"][-1]["content"],
                 "base": b, "tuned": t}
                for r, b, t in zip(sample_rows, base, tuned)
            ]

        metrics = {
            "heldout_loss": tuned_loss,
            "heldout_perplexity": math.exp(tuned_loss),
            "base_heldout_loss": base_loss,
            "base_heldout_perplexity": math.exp(base_loss),
            "heldout_rows": len(rows),
        }
        result = {"metrics": metrics, "samples": samples}
        Path(extras["result_file"]).write_text(json.dumps(result, indent=2, ensure_ascii=False))
        context.report_asset_materialization(metadata={"result_file": extras["result_file"]})


if __name__ == "__main__":
    main()
