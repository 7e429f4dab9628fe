"""Near-duplicate detection with MinHash and LSH banding, vectorized with numpy.

Why not datasketch row by row: at a million rows its per-row Python calls (one
MinHash, one LSH insert each) dominate. Here a whole block of rows is shingled
with one prefix-hash pass over its characters, the signatures come from one
broadcast multiply-add-min, and the LSH buckets from one sort per band.

- Shingles are word or character n-grams of the lower-cased text; each is a
  64-bit polynomial hash of its characters, mixed (splitmix64).
- Permutation i maps a shingle hash x to (a_i * x + b_i) mod 2**32 with a_i odd,
  a bijection of the 32-bit space; the signature holds the minimum per permutation.
  The fraction of equal signature entries estimates the Jaccard similarity.
- Bands of r signature rows are hashed; rows sharing a band bucket are candidates,
  kept only when their estimated Jaccard reaches the threshold, then clustered
  (connected components). Everything is seeded: same rows, same clusters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

_WORD = re.compile(r"\w+")
_BASE = np.uint64(0x100000001B3)  # odd: invertible modulo 2**64
_BASE_INVERSE = np.uint64(pow(0x100000001B3, -1, 2**64))
_COMBINE = np.uint64(0x9E3779B97F4A7C15)
# Shingles per block: bounds the block's work arrays to a few tens of MB.
_BLOCK_SHINGLES = 500_000


@dataclass(frozen=True)
class MinHashParams:
    unit: str = "words"  # "words" or "chars"
    size: int = 3
    num_perm: int = 128
    threshold: float = 0.8
    seed: int = 1


def shingle_text(text: str) -> str:
    """The text shingles are taken from: lower-cased words separated by single spaces."""
    return " ".join(_WORD.findall(text.lower()))


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: spreads a 64-bit hash's entropy over all bits."""
    with np.errstate(over="ignore"):
        values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return values ^ (values >> np.uint64(31))


_POWERS: list[np.ndarray] = [np.ones(1, dtype=np.uint64), np.ones(1, dtype=np.uint64)]


def _powers(length: int) -> tuple[np.ndarray, np.ndarray]:
    """B**i and B**-i modulo 2**64 for i < length; computed once, grown by doubling."""
    if _POWERS[0].size < length:
        size = 1 << (length - 1).bit_length()
        with np.errstate(over="ignore"):
            power = np.cumprod(np.full(size - 1, _BASE, dtype=np.uint64))
            inverse = np.cumprod(np.full(size - 1, _BASE_INVERSE, dtype=np.uint64))
        one = np.ones(1, dtype=np.uint64)
        _POWERS[:] = [np.concatenate((one, power)), np.concatenate((one, inverse))]
    return _POWERS[0], _POWERS[1]


def _substring_hashes(codes: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Polynomial hash of codes[start:end] for every (start, end), independent of position."""
    power, inverse = _powers(codes.size + 1)
    with np.errstate(over="ignore"):
        prefix = np.zeros(codes.size + 1, dtype=np.uint64)
        np.cumsum(codes * power[: codes.size], out=prefix[1:])
        return _mix((prefix[ends] - prefix[starts]) * inverse[starts])


def shingle_hashes(
    texts: list[str], unit: str, size: int, fallback: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Shingle hashes of every text, grouped by text: (hashes as uint32, row offsets).

    `texts` come from `shingle_text`. A text shorter than one shingle is one shingle
    of itself; a text with no words gets `fallback[row]` (e.g. its content hash), so
    it only matches exact copies.
    """
    rows = len(texts)
    joined = "\n".join(texts)
    codes = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    newline = codes == 10
    row_of = np.concatenate(([0], np.cumsum(newline)))[:-1] if codes.size else codes
    # words: spaces separate tokens; chars: a whole text is one run, cut into windows later
    is_token = (codes != 32) & ~newline if unit == "words" else ~newline
    edges = np.diff(np.concatenate(([False], is_token, [False])).astype(np.int8))
    tok_start = np.flatnonzero(edges == 1)
    tok_end = np.flatnonzero(edges == -1)
    if unit == "words":
        token_hash = _substring_hashes(codes, tok_start, tok_end)
        token_row = row_of[tok_start]
    else:
        # character n-grams: a "token" run is a whole text; shingles are windows in it
        return _char_shingles(codes, tok_start, tok_end, row_of, rows, size, fallback)
    return _word_shingles(token_hash, token_row, rows, size, fallback)


def _finish(hashes: np.ndarray, row: np.ndarray, rows: int, fallback: np.ndarray):
    """Add the fallback shingle for rows without any, sort by row, return (uint32, offsets)."""
    counts = np.bincount(row, minlength=rows) if row.size else np.zeros(rows, dtype=np.int64)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        hashes = np.concatenate((hashes, _mix(fallback[empty].astype(np.uint64))))
        row = np.concatenate((row, empty))
        order = np.argsort(row, kind="stable")
        hashes, row = hashes[order], row[order]
        counts[empty] = 1
    offsets = np.concatenate(([0], np.cumsum(counts)))
    return (hashes >> np.uint64(32)).astype(np.uint32), offsets


def _word_shingles(token_hash, token_row, rows, size, fallback):
    n = token_hash.size
    per_row = np.bincount(token_row, minlength=rows) if n else np.zeros(rows, dtype=np.int64)
    first = np.concatenate(([0], np.cumsum(per_row)))[:-1]
    windows = [token_hash]  # windows[k][i]: hash of tokens i..i+k
    with np.errstate(over="ignore"):
        for k in range(1, size):
            previous = windows[-1]
            windows.append(_mix(previous[: n - k] * _COMBINE + token_hash[k:]))
    full = windows[size - 1]
    valid = token_row[: full.size] == token_row[size - 1 :] if full.size else full.astype(bool)
    hashes, row = full[valid], token_row[: full.size][valid]
    # rows with 1..size-1 words: one shingle of all their words
    short = [np.flatnonzero(per_row == length) for length in range(1, size)]
    if any(rows_of_length.size for rows_of_length in short):
        picked = [windows[length - 1][first[r]] for length, r in enumerate(short, start=1)]
        hashes = np.concatenate((hashes, *picked))
        row = np.concatenate((row, *short))
        order = np.argsort(row, kind="stable")
        hashes, row = hashes[order], row[order]
    return _finish(hashes, row, rows, fallback)


def _char_shingles(codes, run_start, run_end, row_of, rows, size, fallback):
    counts = np.maximum(run_end - run_start - size + 1, 1)
    run_of = np.repeat(np.arange(run_start.size), counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    starts = run_start[run_of] + within
    ends = np.minimum(starts + size, run_end[run_of])
    hashes = _substring_hashes(codes, starts, ends)
    return _finish(hashes, row_of[starts], rows, fallback)


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**32, size=num_perm, dtype=np.uint64).astype(np.uint32) | np.uint32(1)
    b = rng.integers(0, 2**32, size=num_perm, dtype=np.uint64).astype(np.uint32)
    return a, b


def signatures(
    items: Sequence[Any],
    params: MinHashParams,
    fallback: np.ndarray | None = None,
    text_of: Callable[[Any], str] = str,
) -> np.ndarray:
    """MinHash signatures, one row of `num_perm` uint32 per item. Each item's text is
    `text_of(item)`, shingled block by block so that only one block's text is in memory."""
    fallback = np.arange(len(items), dtype=np.uint64) if fallback is None else fallback
    a, b = permutations(params.num_perm, params.seed)
    out = np.empty((len(items), params.num_perm), dtype=np.uint32)
    start = 0
    sample = [shingle_text(text_of(x)) for x in items[:1000]]
    block = max(1, int(_BLOCK_SHINGLES / _mean_shingles(sample, params.unit)))
    while start < len(items):
        stop = min(len(items), start + block)
        texts = [shingle_text(text_of(x)) for x in items[start:stop]]
        hashes, offsets = shingle_hashes(texts, params.unit, params.size, fallback[start:stop])
        del texts
        # One permutation at a time over a flat array: ~10x faster than a 2-D broadcast.
        work = np.empty_like(hashes)
        for i in range(params.num_perm):
            np.multiply(hashes, a[i], out=work)
            work += b[i]
            out[start:stop, i] = np.minimum.reduceat(work, offsets[:-1])
        start = stop
    return out


def _mean_shingles(sample: list[str], unit: str) -> float:
    chars = sum(len(t) for t in sample) / max(1, len(sample))
    return (chars if unit == "chars" else chars / 6) + 1


@lru_cache(maxsize=32)
def band_layout(num_perm: int, threshold: float) -> tuple[int, int]:
    """(bands, rows per band) minimizing false positives + false negatives around the
    threshold, as datasketch chooses them."""
    s = np.linspace(0.0, 1.0, 401)
    best, best_cost = (1, num_perm), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            p = 1.0 - (1.0 - s**rows) ** bands
            cost = np.trapezoid(np.where(s < threshold, p, 0.0), s) + np.trapezoid(
                np.where(s >= threshold, 1.0 - p, 0.0), s
            )
            if cost < best_cost:
                best, best_cost = (bands, rows), cost
    return best


def _band_keys(sig: np.ndarray, band: int, rows: int) -> np.ndarray:
    cols = sig[:, band * rows : (band + 1) * rows].astype(np.uint64)
    key = np.zeros(sig.shape[0], dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(rows):
            key = _mix(key * _COMBINE + cols[:, j])
    return key


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Fraction of equal signature entries, row by row."""
    out = np.empty(sig_a.shape[0], dtype=np.float64)
    for start in range(0, sig_a.shape[0], 65536):
        stop = start + 65536
        out[start:stop] = (sig_a[start:stop] == sig_b[start:stop]).mean(axis=1)
    return out


def similar_pairs(sig: np.ndarray, threshold: float) -> np.ndarray:
    """Verified near-duplicate pairs (i < j) among the rows of `sig`, shape (n, 2)."""
    n = sig.shape[0]
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    bands, rows = band_layout(sig.shape[1], threshold)
    found = []
    for band in range(bands):
        key = _band_keys(sig, band, rows)
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        new_run = np.concatenate(([True], sorted_key[1:] != sorted_key[:-1]))
        run_first = order[np.flatnonzero(new_run)][np.cumsum(new_run) - 1]
        members = order != run_first
        if not members.any():
            continue
        # link every bucket member to the bucket's first row (its smallest index)
        found.append(np.stack((run_first[members], order[members]), axis=1))
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.unique(np.concatenate(found), axis=0)
    keep = estimated_jaccard(sig[pairs[:, 0]], sig[pairs[:, 1]]) >= threshold
    return pairs[keep]


def cluster_labels(n: int, pairs: np.ndarray) -> np.ndarray:
    """Cluster id per row: the smallest row index of its connected component."""
    if pairs.size == 0:
        return np.arange(n)
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), (n, n))
    _, component = connected_components(graph, directed=False)
    first = np.full(component.max() + 1, n, dtype=np.int64)
    np.minimum.at(first, component, np.arange(n))
    return first[component]


def cross_pairs(
    sig_query: np.ndarray, sig_index: np.ndarray, threshold: float, per_bucket: int = 16
) -> np.ndarray:
    """Pairs (query row, index row) whose estimated Jaccard reaches the threshold.

    Candidates come from bands laid out for a lower threshold than asked, so that
    a leakage check finds more than the dedupe did; every candidate is verified.
    """
    if sig_query.shape[0] == 0 or sig_index.shape[0] == 0:
        return np.zeros((0, 2), dtype=np.int64)
    bands, rows = band_layout(sig_query.shape[1], max(0.3, threshold - 0.2))
    found = []
    for band in range(bands):
        index_key = _band_keys(sig_index, band, rows)
        order = np.argsort(index_key, kind="stable")
        sorted_key = index_key[order]
        query_key = _band_keys(sig_query, band, rows)
        lo = np.searchsorted(sorted_key, query_key, "left")
        hi = np.minimum(np.searchsorted(sorted_key, query_key, "right"), lo + per_bucket)
        counts = hi - lo
        if not counts.any():
            continue
        query = np.repeat(np.arange(len(query_key)), counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        found.append(np.stack((query, order[np.repeat(lo, counts) + offsets]), axis=1))
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.unique(np.concatenate(found), axis=0)
    keep = estimated_jaccard(sig_query[pairs[:, 0]], sig_index[pairs[:, 1]]) >= threshold
    return pairs[keep]
