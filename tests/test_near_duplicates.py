import random

import numpy as np
from datasketch import MinHash

from pipelines.lib import near_duplicates as nd

PARAMS = nd.MinHashParams()


def shingles(text: str, size: int = 3) -> set[str]:
    words = nd.shingle_text(text).split()
    if len(words) < size:
        return {" ".join(words)}
    return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}


def jaccard(a: str, b: str) -> float:
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb)


def corpus(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """n random rows and, for each, a copy with 0-4 words replaced."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(3000)]
    rows = [" ".join(rng.choices(vocab, k=rng.randint(20, 60))) for _ in range(n)]
    copies = []
    for row in rows:
        words = row.split()
        for _ in range(rng.randint(0, 4)):
            words[rng.randrange(len(words))] = rng.choice(vocab)
        copies.append(" ".join(words))
    return rows, copies


def test_estimates_track_true_jaccard_as_closely_as_datasketch():
    rows, copies = corpus(400)
    sig = nd.signatures(rows + copies, PARAMS)
    ours = nd.estimated_jaccard(sig[:400], sig[400:])
    true = np.array([jaccard(a, b) for a, b in zip(rows, copies, strict=True)])
    reference = []
    for a, b in zip(rows, copies, strict=True):
        ma, mb = MinHash(num_perm=128), MinHash(num_perm=128)
        ma.update_batch([s.encode() for s in shingles(a)])
        mb.update_batch([s.encode() for s in shingles(b)])
        reference.append(ma.jaccard(mb))
    ours_error = np.abs(ours - true).mean()
    datasketch_error = np.abs(np.array(reference) - true).mean()
    assert abs(ours - true).mean() < 0.04 and abs((ours - true).mean()) < 0.01
    assert ours_error < datasketch_error * 1.3


def test_planted_near_duplicates_cluster_and_unrelated_rows_do_not():
    rows, copies = corpus(1000, seed=1)
    sig = nd.signatures(rows + copies, PARAMS)
    labels = nd.cluster_labels(2000, nd.similar_pairs(sig, 0.8))
    true = np.array([jaccard(a, b) for a, b in zip(rows, copies, strict=True)])
    together = labels[:1000] == labels[1000:]
    assert together[true >= 0.9].mean() >= 0.95
    assert not together[true < 0.5].any()
    # a cluster's label is its first row: the original, never the later copy
    assert (labels[:1000] == np.arange(1000)).all()
    assert len(set(labels[:1000])) == 1000  # no unrelated rows merged


def test_signatures_are_deterministic_and_short_texts_still_get_one():
    texts = ["", "one", "one two", "one two three four", "One, two!"]
    first = nd.signatures(texts, PARAMS, np.arange(5, dtype=np.uint64) + 10)
    again = nd.signatures(texts, PARAMS, np.arange(5, dtype=np.uint64) + 10)
    assert (first == again).all()
    assert (first[2] == first[4]).all()  # same words after lower-casing and punctuation
    assert not (first[0] == first[1]).all()


def test_character_shingles():
    params = nd.MinHashParams(unit="chars", size=5)
    sig = nd.signatures(["the quick brown fox", "the quick brown fix", "lorem ipsum"], params)
    assert nd.estimated_jaccard(sig[:1], sig[1:2])[0] > 0.5
    assert nd.estimated_jaccard(sig[:1], sig[2:3])[0] < 0.1


def test_cross_pairs_find_held_out_rows_copied_into_training():
    rows, copies = corpus(300, seed=2)
    sig_train = nd.signatures(rows, PARAMS)
    sig_heldout = nd.signatures(copies[:50] + corpus(50, seed=3)[0], PARAMS)
    pairs = nd.cross_pairs(sig_heldout, sig_train, 0.8)
    found = {int(q) for q, _ in pairs}
    expected = {i for i in range(50) if jaccard(rows[i], copies[i]) >= 0.9}
    assert expected <= found
    assert all(q < 50 and t == q for q, t in pairs)
