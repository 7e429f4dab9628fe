"""Markdown shown in the Dagster UI and attached to MLflow runs."""

from __future__ import annotations


def _cell(text: str, limit: int = 160) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def samples_markdown(samples: list[dict]) -> str:
    """A table of held-out prompts with the reference, base and tuned answers."""
    if not samples:
        return "_no samples requested (eval.num_samples: 0)_"
    lines = ["| prompt | reference | base | tuned |", "|---|---|---|---|"]
    lines += [
        "| " + " | ".join(_cell(s[k]) for k in ("prompt", "reference", "base", "tuned")) + " |"
        for s in samples
    ]
    return "\n".join(lines)


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def run_summary(recipe_id: str, dagster_run_id: str, outputs: dict[str, dict]) -> str:
    """The closing summary of a run, from the values its assets returned."""
    raw = outputs.get("raw_data", {})
    split = outputs.get("split", {})
    train = outputs.get("training_run", {})
    evaluation = outputs.get("evaluation", {})
    adapter = outputs.get("registered_adapter", {})
    rows = [
        ("recipe", recipe_id),
        ("dagster run", dagster_run_id),
        ("data.dvc md5", raw.get("data_md5")),
        ("train / held-out rows", f"{split.get('train_rows')} / {split.get('heldout_rows')}"
         if split else None),
        ("training steps", train.get("steps")),
        ("final train loss", train.get("final_train_loss")),
        ("held-out loss (base -> tuned)",
         f"{_fmt(evaluation['base_heldout_loss'])} -> {_fmt(evaluation['heldout_loss'])}"
         if evaluation else None),
        ("held-out perplexity (base -> tuned)",
         f"{_fmt(evaluation['base_heldout_perplexity'])} -> {_fmt(evaluation['heldout_perplexity'])}"
         if evaluation else None),
        ("mlflow run id", train.get("mlflow_run_id")),
        ("adapter", adapter.get("adapter_uri") or train.get("adapter_dir")),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [f"  {label:<{width}}  {_fmt(value) if value is not None else '-'}"
             for label, value in rows]
    lines += [
        "",
        "  Dagster UI:  make ui      -> http://127.0.0.1:3000 (asset graph, partition metadata)",
        "  MLflow UI:   make mlflow  -> http://127.0.0.1:5000 (experiment 'rung': tags, metrics)",
    ]
    return "\n".join(lines)
