"""Data lineage on the MLflow run: datasets with content digests, the data card, hashes.

Train and held-out are logged as MLflow datasets (the run's "inputs", with the
file's sha256 as digest and its path as source); the raw data version is the
data.dvc md5, and the cleaned and split files' sha256 are tags. The data card goes
to `data_card/`: `data_card.md` with its plots linked beside it, and `data_card.html`
with them embedded, the copy MLflow's artifact viewer shows with its plots.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.lib.asset_values import Split
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


def log_data_lineage(client: Any, run_id: str, split: Split) -> None:
    """Log the split's datasets, data card and file hashes to an existing MLflow run."""
    files = {"train": (split.train_file, split.train_sha256)}
    files["heldout"] = (split.heldout_file, split.heldout_sha256)
    inputs = [
        _dataset_input(name, Path(files[name][0]), files[name][1], context)
        for name, context in CONTEXTS.items()
    ]
    client.log_inputs(run_id, datasets=inputs)
    for key in ("cleaned_sha256", "train_sha256", "heldout_sha256"):
        client.set_tag(run_id, f"rung.{key}", getattr(split, key))
    for file in sorted(Path(split.data_card).parent.iterdir()):
        client.log_artifact(run_id, str(file), "data_card")
