"""What the trainer learns from, by method: SFT rows, DPO pairs, or a teacher's answers.

- sft: the training split as it is.
- dpo, pairs from data: the split's preference rows (prompt messages, chosen, rejected).
- dpo, on-policy pairs: for each training prompt the gold answer is chosen and the base
  model's own answer is rejected, when that answer is wrong by the task's metric.
- distill: the teacher answers every training prompt; its answer replaces the gold one
  (the student never sees gold labels) and each row records where it came from.
- rehearsal (sft, distill): the base model's own answers to unrelated prompts are added,
  without the recipe's system prompt, so the adapter learns to leave those alone.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.lib import raw_sources, splitting
from pipelines.lib.metrics import Scorer

ROW_PERFECT = 1.0 - 1e-9


def as_sft(frame: pd.DataFrame) -> pd.DataFrame:
    """Preference rows become conversations whose answer is the chosen one (for scoring)."""
    if "chosen" not in frame.columns:
        return frame
    frame = frame.copy()
    frame["messages"] = [
        list(m) + [{"role": "assistant", "content": c}] if m[-1]["role"] != "assistant" else m
        for m, c in zip(frame["messages"], frame["chosen"])
    ]
    return frame


def prompt_of(messages: list[dict]) -> list[dict]:
    """The conversation up to (not including) the final assistant answer."""
    return messages[:-1] if messages and messages[-1]["role"] == "assistant" else messages


def preference_records(train: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {"id": r.id, "messages": prompt_of(r.messages), "chosen": r.chosen, "rejected": r.rejected}
        for r in train.itertuples(index=False)
    ]


def on_policy_pairs(
    train: pd.DataFrame, base_answers: dict[str, str], scorer: Scorer
) -> tuple[list[dict[str, Any]], int]:
    """DPO pairs (gold chosen, the base model's wrong answer rejected); also how many
    training prompts the base model already answered perfectly (no pair for those)."""
    references = [m[-1]["content"] for m in train["messages"]]
    answers = [base_answers[key] for key in train["id"]]
    scores = scorer.row_scores(scorer.row_stats(answers, references))
    pairs = [
        {"id": key, "messages": prompt_of(messages), "chosen": reference, "rejected": answer}
        for key, messages, reference, answer, score in zip(
            train["id"], train["messages"], references, answers, scores
        )
        if score < ROW_PERFECT and answer.strip() != reference.strip()
    ]
    return pairs, len(train) - len(pairs)


def distilled_records(
    train: pd.DataFrame, teacher_answers: dict[str, str], provenance: dict[str, Any]
) -> list[dict[str, Any]]:
    """The teacher's answer as the assistant turn, with the teacher's identity per row."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return [
        {
            "id": key,
            "messages": prompt_of(messages)
            + [{"role": "assistant", "content": teacher_answers[key]}],
            "provenance": {**provenance, "labelled_at": stamp},
        }
        for key, messages in zip(train["id"], train["messages"])
        if teacher_answers[key].strip()
    ]


def rehearsal_prompts(path: Path, field: str, rows: int, seed: int) -> list[dict[str, str]]:
    """`rows` prompts from the file, sampled in hash order (same seed, same sample), each
    {"id", "prompt"}; a missing field is an error naming the file, line and field."""
    prompts = {}
    for row in raw_sources.read_source(path):
        if isinstance(row, raw_sources.BadRow):
            raise ValueError(f"{path}:{row.line}: {row.reason}")
        text = row.record.get(field)
        if not isinstance(text, str):
            raise ValueError(
                f"{path}:{row.line}: train.rehearsal.field '{field}' is missing or not text"
            )
        if text.strip():
            prompts.setdefault(" ".join(text.split()), row.line)
    ranked = sorted(prompts, key=lambda text: splitting.unit_hash(seed, "rehearsal:" + text))
    return [{"id": f"rehearsal-{prompts[text]}", "prompt": text} for text in ranked[:rows]]


def rehearsal_records(
    prompts: list[dict[str, str]], base_answers: dict[str, str], provenance: dict[str, Any]
) -> list[dict[str, Any]]:
    """The base model's answer to each prompt as a training conversation (no system prompt:
    the model's own default, as for any request outside the recipe's task)."""
    return [
        {
            "id": p["id"],
            "messages": [
                {"role": "user", "content": p["prompt"]},
                {"role": "assistant", "content": base_answers[p["id"]]},
            ],
            "provenance": provenance,
        }
        for p in prompts
        if base_answers[p["id"]].strip()
    ]


def within_length(
    records: list[dict[str, Any]], count_tokens, sequence_len: int
) -> list[dict[str, Any]]:
    """The records whose whole conversation fits sequence_len tokens (as the trainer
    renders it); like the data stage, longer rows are dropped, never truncated."""
    lengths = count_tokens([r["messages"] for r in records])
    return [r for r, n in zip(records, lengths) if n <= sequence_len]


def length_bias(records: list[dict[str, Any]]) -> dict[str, float]:
    """Do chosen answers tend to be longer than rejected ones? (DPO learns length
    preferences easily; a strong bias is worth knowing before crediting the 'taste'.)"""
    pairs = [(len(r["chosen"].split()), len(r["rejected"].split())) for r in records]
    if not pairs:
        return {}
    chosen, rejected = zip(*pairs)
    return {
        "pairs": float(len(pairs)),
        "chosen_mean_words": sum(chosen) / len(pairs),
        "rejected_mean_words": sum(rejected) / len(pairs),
        "chosen_longer_share": sum(c > r for c, r in pairs) / len(pairs),
    }
