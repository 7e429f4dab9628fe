"""The data card of a run: what went in, what was dropped and why, what training sees.

Written as markdown with PNG plots beside it (for people and tools that follow
relative links), as one markdown string with the plots embedded (Dagster has no
image metadata), and as one HTML page with the plots embedded: MLflow's artifact
viewer shows no image of a markdown file, but renders an HTML artifact whole.
"""

from __future__ import annotations

import base64
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.lib.report import html_page

PLOTS = ("lengths", "labels", "drops")


@dataclass(frozen=True)
class DataCard:
    markdown: str  # images linked as files beside it
    embedded: str  # images inlined (Dagster metadata)
    files: list[Path]  # the card, its plots, and the card as one HTML page


def _figure_png(draw) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3), dpi=90)
    draw(ax)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})  # no timestamp: same bytes
    plt.close(fig)
    return buffer.getvalue()


def _lengths(train: list[int], heldout: list[int], limit: int):
    def draw(ax):
        bins = list(range(0, limit + max(1, limit // 32), max(1, limit // 32)))
        ax.hist([train, heldout], bins=bins, label=["train", "held-out"], stacked=True)
        ax.axvline(limit, color="red", linestyle="--", label="sequence_len")
        ax.set_xlabel("tokens per row (chat template applied)")
        ax.set_ylabel("rows")
        ax.legend()

    return draw


def _labels(train: Counter, heldout: Counter):
    def draw(ax):
        labels = sorted(set(train) | set(heldout))
        xs = range(len(labels))
        ax.bar([x - 0.2 for x in xs], [train[k] for k in labels], width=0.4, label="train")
        ax.bar([x + 0.2 for x in xs], [heldout[k] for k in labels], width=0.4, label="held-out")
        ax.set_xticks(list(xs), labels, rotation=20)
        ax.set_ylabel("rows")
        ax.legend()

    return draw


def _drops(reasons: dict[str, int]):
    def draw(ax):
        names = list(reasons) or ["nothing dropped"]
        values = [reasons.get(n, 0) for n in names]
        bars = ax.barh(names, values)
        ax.bar_label(bars, labels=[f"{v:,}" for v in values], padding=2)
        if values and max(values) > 50 * max(1, min(values)):
            ax.set_xscale("log")  # a big sample cut would hide the bad rows
        ax.invert_yaxis()
        ax.set_xlabel("rows")

    return draw


def _table(rows: list[tuple[str, Any]]) -> str:
    return "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


def build_data_card(
    folder: Path,
    *,
    recipe_id: str,
    counts: dict[str, int],
    drop_reasons: dict[str, int],
    train: list[dict[str, Any]],
    heldout: list[dict[str, Any]],
    hashes: dict[str, str],
    sequence_len: int,
    notes: list[str],
) -> DataCard:
    """Write data_card.md and its plots into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    train_labels = Counter(r["label"] for r in train if "label" in r)
    heldout_labels = Counter(r["label"] for r in heldout if "label" in r)
    plots: dict[str, bytes] = {
        "lengths": _figure_png(
            _lengths(
                [r.get("tokens", 0) for r in train],
                [r.get("tokens", 0) for r in heldout],
                sequence_len,
            )
        ),
        "drops": _figure_png(_drops(drop_reasons)),
    }
    if train_labels or heldout_labels:
        plots["labels"] = _figure_png(_labels(train_labels, heldout_labels))
    files = []
    for name, png in plots.items():
        (folder / f"{name}.png").write_bytes(png)
        files.append(folder / f"{name}.png")

    def section(image) -> str:
        return (
            "\n\n".join(
                [
                    f"# Data card: {recipe_id}",
                    "## Rows\n\n"
                    + _table(
                        [(k.replace("_", " "), v) for k, v in counts.items()]
                        + [("train rows", len(train)), ("held-out rows", len(heldout))]
                    ),
                    "## Drop reasons\n\n"
                    + _table(list(drop_reasons.items()) or [("none", 0)])
                    + "\n\n"
                    + image("drops"),
                    "## Lengths\n\n" + image("lengths"),
                    *(
                        [
                            "## Labels\n\n"
                            + _table(
                                [
                                    (k, f"{train_labels[k]} / {heldout_labels[k]}")
                                    for k in sorted(set(train_labels) | set(heldout_labels))
                                ]
                            )
                            + "\n\n(train / held-out)\n\n"
                            + image("labels")
                        ]
                        if "labels" in plots
                        else []
                    ),
                    "## Versions\n\n" + _table(list(hashes.items())),
                    *(["## Notes\n\n" + "\n".join(f"- {n}" for n in notes)] if notes else []),
                ]
            )
            + "\n"
        )

    markdown = section(lambda name: f"![{name}]({name}.png)")
    embedded = section(
        lambda name: f"![{name}](data:image/png;base64,{base64.b64encode(plots[name]).decode()})"
    )
    (folder / "data_card.md").write_text(markdown)
    files.insert(0, folder / "data_card.md")
    (folder / "data_card.html").write_text(html_page(embedded, f"Data card: {recipe_id}"))
    files.append(folder / "data_card.html")
    return DataCard(markdown, embedded, files)
