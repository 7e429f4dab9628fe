"""The embedded labelled data: movie-review snippets rated by people, from vaderSentiment.

`additional_resources/hutto_ICWSM_2014.tar.gz` in the vaderSentiment 3.3.2 sdist
(MIT) holds `movieReviewSnippets_GroundTruth.txt`: 10,605 sentence-level
snippets (tab-separated id, mean rating of >= 20 raters on -4..4, text). Each
becomes one CSV row with a 3-class label: positive (mean >= 1), negative
(mean <= -1), else neutral. The file is written byte-for-byte reproducibly (the
rating is copied as text, never re-formatted).
"""

from __future__ import annotations

import csv
import io
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pipelines.lib import pypi

PACKAGE = "vaderSentiment==3.3.2"
INNER_ARCHIVE = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
MEMBER = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
LICENSE_NOTE = (
    "vaderSentiment 3.3.2 additional_resources/hutto_ICWSM_2014.tar.gz, "
    "movieReviewSnippets_GroundTruth.txt, MIT licence, (c) C.J. Hutto"
)
COLUMNS = ("id", "text", "mean_rating", "label")


def read_ground_truth(sdist: Path) -> bytes:
    """The movie snippets file, from the archive inside the sdist."""
    with tarfile.open(sdist) as outer:
        inner = outer.extractfile(INNER_ARCHIVE)
        if inner is None:
            raise FileNotFoundError(f"{sdist}: {INNER_ARCHIVE} is missing")
        with tarfile.open(fileobj=io.BytesIO(inner.read())) as archive:
            member = archive.extractfile(MEMBER)
            if member is None:
                raise FileNotFoundError(f"{sdist}: {MEMBER} is missing")
            return member.read()


def label_for(mean_rating: float) -> str:
    if mean_rating >= 1:
        return "positive"
    if mean_rating <= -1:
        return "negative"
    return "neutral"


def parse_snippets(raw: bytes) -> Iterator[dict[str, str]]:
    """One row per snippet line, in file order."""
    for line in raw.decode("utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or not parts[2].strip():
            continue
        snippet_id, rating, text = parts
        yield {
            "id": f"movie-{int(snippet_id):05d}",
            "text": text.strip(),
            "mean_rating": rating.strip(),
            "label": label_for(float(rating)),
        }


def write_csv(rows: Iterator[dict[str, str]], path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def import_sentiment_corpus(out_file: Path) -> int:
    """Download, convert and write the corpus; returns the number of rows."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = read_ground_truth(pypi.download(PACKAGE, Path(tmp), sdist=True))
    count = write_csv(parse_snippets(raw), out_file)
    (out_file.parent / "SOURCE.txt").write_text(f"{LICENSE_NOTE}\n{count} rows\n")
    return count
