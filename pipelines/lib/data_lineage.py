"""Data lineage on the MLflow run: datasets with content digests, the data card, hashes.

Train and held-out are logged as MLflow datasets (the run's "inputs", with the
file's sha256 as digest and its path as source); the raw data version is the
data.dvc md5, and the cleaned and split files' sha256 are tags.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.lib.dataset import read_jsonl

CONTEXTS = {"train": "training", "heldout": "evaluation"}


def _dataset_input(name: str, path: Path, sha256: str, context: str) -> Any:
    import mlflow
    import pandas as pd
    from mlflow.entities import DatasetInput, InputTag

    rows = read_jsonl(path)
    frame = pd.DataFrame({"id": [r["id"] for r in rows], "label": [r.get("label") for r in rows]})
    dataset = mlflow.data.from_pandas(frame, source=str(path), name=name, digest=sha256[:32])
    return DatasetInput(
        dataset=dataset._to_mlflow_entity(),
        tags=[InputTag(key="mlflow.data.context", value=context)],
    )


def log_data_lineage(client: Any, run_id: str, split: dict[str, Any]) -> None:
    """Log the split's datasets, data card and file hashes to an existing MLflow run."""
    inputs = [
        _dataset_input(name, Path(split[f"{name}_file"]), split[f"{name}_sha256"], context)
        for name, context in CONTEXTS.items()
    ]
    client.log_inputs(run_id, datasets=inputs)
    for key in ("cleaned_sha256", "train_sha256", "heldout_sha256"):
        if key in split:
            client.set_tag(run_id, f"rung.{key}", split[key])
    card = split.get("data_card")
    if card:
        for file in sorted(Path(card).parent.iterdir()):
            client.log_artifact(run_id, str(file), "data_card")
