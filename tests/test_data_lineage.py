"""The data card, datasets and file hashes land on the MLflow run (a real local store)."""

from pathlib import Path

from pipelines.lib import dataset, tracking
from pipelines.lib.asset_values import Split
from pipelines.lib.data_card import build_data_card
from pipelines.lib.data_lineage import log_data_lineage


def test_datasets_card_and_hashes_are_logged(tmp_path):
    train = [{"id": "a1", "messages": [], "label": "pos", "tokens": 12}]
    heldout = [{"id": "b2", "messages": [], "label": "neg", "tokens": 15}]
    split = {
        "train_file": str(tmp_path / "train.jsonl"),
        "heldout_file": str(tmp_path / "heldout.jsonl"),
        "cleaned_sha256": "c" * 64,
    }
    split["train_sha256"] = dataset.write_jsonl(train, Path(split["train_file"]))
    split["heldout_sha256"] = dataset.write_jsonl(heldout, Path(split["heldout_file"]))
    card = build_data_card(
        tmp_path / "data_card",
        recipe_id="demo",
        counts={"rows_in": 2, "kept": 2},
        drop_reasons={},
        train=train,
        heldout=heldout,
        hashes={"train": "x"},
        sequence_len=64,
        notes=[],
    )
    split["data_card"] = str(card.files[0])
    split = Split(
        recipe_id="demo",
        train_rows=1,
        heldout_rows=1,
        data_card_embedded=str(tmp_path / "embedded.md"),
        **split,
    )
    assert "data:image/png;base64," in card.embedded and "![labels](labels.png)" in card.markdown

    run_id = tracking.start_run("demo", "dagster-run-lineage", {})
    client = tracking.configure_mlflow()
    log_data_lineage(client, run_id, split)

    run = client.get_run(run_id)
    datasets = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert datasets["train"].dataset.digest == split.train_sha256[:32]
    assert datasets["heldout"].dataset.digest == split.heldout_sha256[:32]
    assert [t.value for t in datasets["heldout"].tags] == ["evaluation"]
    assert run.data.tags["rung.cleaned_sha256"] == "c" * 64
    listed = {a.path for a in client.list_artifacts(run_id, "data_card")}
    assert listed == {
        "data_card/data_card.md",
        "data_card/data_card.html",
        "data_card/lengths.png",
        "data_card/drops.png",
        "data_card/labels.png",
    }
