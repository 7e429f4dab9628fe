import io
import tarfile

from pipelines import paths
from pipelines.lib import sentiment_corpus
from pipelines.lib.dataset import clean_sources
from pipelines.recipe import load_recipe

SNIPPETS = (
    b"1\t2.26666666667\tThe Rock is destined to be great.\r\n"
    b"2\t-0.6\tEffective but too tepid biopic\r\n"
    b"3\t-1.0\tA mess.\r\n"
    b"4\t1.0\tFun.\r\n"
    b"5\t0.5\t\r\n"
)


def fake_sdist(tmp_path):
    """An sdist with the real layout: a tar.gz inside the tar.gz."""
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as archive:
        info = tarfile.TarInfo(sentiment_corpus.MEMBER)
        info.size = len(SNIPPETS)
        archive.addfile(info, io.BytesIO(SNIPPETS))
    sdist = tmp_path / "vaderSentiment-3.3.2.tar.gz"
    with tarfile.open(sdist, mode="w:gz") as archive:
        info = tarfile.TarInfo(sentiment_corpus.INNER_ARCHIVE)
        info.size = len(inner.getvalue())
        archive.addfile(info, io.BytesIO(inner.getvalue()))
    return sdist


def test_snippets_become_labelled_rows(tmp_path):
    raw = sentiment_corpus.read_ground_truth(fake_sdist(tmp_path))
    rows = list(sentiment_corpus.parse_snippets(raw))
    assert [(r["id"], r["label"]) for r in rows] == [
        ("movie-00001", "positive"),
        ("movie-00002", "neutral"),
        ("movie-00003", "negative"),
        ("movie-00004", "positive"),
    ]
    assert rows[0]["mean_rating"] == "2.26666666667"  # copied as text, never re-formatted


def test_written_csv_is_byte_for_byte_reproducible(tmp_path):
    raw = sentiment_corpus.read_ground_truth(fake_sdist(tmp_path))
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert sentiment_corpus.write_csv(sentiment_corpus.parse_snippets(raw), a) == 4
    sentiment_corpus.write_csv(sentiment_corpus.parse_snippets(raw), b)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes().startswith(b"id,text,mean_rating,label\nmovie-00001,")


def test_imported_corpus_feeds_the_sentiment_recipe():
    assert sum(1 for _ in paths.SENTIMENT_CORPUS.open()) == 10606  # header + 10,605 snippets
    recipe = load_recipe(paths.REPO_ROOT / "recipes" / "sentiment-lora.yaml")
    result = clean_sources(
        [paths.SENTIMENT_CORPUS], recipe.spec.data, count_tokens=None, sequence_len=256
    )
    assert result.counts["quarantined"] == 0 and result.reconciles()
    assert len(result.rows) == 360
    assert {r.label for r in result.rows} == {"positive", "negative", "neutral"}
    assert all(r.conversation.messages[-1][1] == r.label for r in result.rows)
