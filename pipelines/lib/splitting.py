"""The held-out split: hash-based, group-aware, stable as the dataset grows.

Rows are joined into units: rows that share a group key (data.group_by, e.g. a
customer id) are one unit, and a row stands for the near-duplicates it replaced.
A unit is held out when the smallest hash of its anchors (its group keys, or
else its row ids) falls below the held-out fraction. A row's anchors never
change when other rows are appended, so a held-out row stays held out: growth
can only add anchors to a unit, which can move it into held-out, never out.

Stratification: every row's draw is independent of its label, so each class is
held out at the same rate. Exact per-class quotas would make a row's side depend
on how many rows its class has, and held-out rows would migrate into training as
the dataset grows; rung keeps stability and reports per-class shares instead
(the class-balance check shows them).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def unit_hash(seed: int, key: str) -> float:
    """A stable pseudo-random number in [0, 1) for a key: same seed and key, same number."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def row_anchors(row_id: str, near_dup_ids: Sequence[str], groups: Sequence[str]) -> list[str]:
    """What decides a row's side: its group keys, or its own id and the ids it replaced."""
    if groups:
        return [f"group:{g}" for g in groups]
    return [f"row:{row_id}", *(f"row:{i}" for i in near_dup_ids)]


def units(groups: Sequence[Sequence[str]]) -> np.ndarray:
    """Unit id per row: rows sharing any group key are one unit (connected components)."""
    n = len(groups)
    first_with: dict[str, int] = {}
    edges: list[tuple[int, int]] = []
    for index, keys in enumerate(groups):
        for key in keys:
            edges.append((first_with.setdefault(key, index), index))
    if not edges:
        return np.arange(n)
    pairs = np.array(edges, dtype=np.int64)
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), (n, n))
    return connected_components(graph, directed=False)[1]


def heldout_mask(
    anchors: Sequence[Sequence[str]],
    groups: Sequence[Sequence[str]],
    fraction: float,
    seed: int,
) -> np.ndarray:
    """True for held-out rows. A unit's side is min(hash of its anchors) < fraction."""
    unit = units(groups)
    draw = np.array([min(unit_hash(seed, "split:" + a) for a in row) for row in anchors])
    unit_draw = np.full(unit.max() + 1 if len(unit) else 0, np.inf)
    np.minimum.at(unit_draw, unit, draw)
    return unit_draw[unit] < fraction


@dataclass(frozen=True)
class Rebalanced:
    indices: list[int]  # training rows after rebalancing (repeats when upsampled)
    removed: int
    added: int


def rebalance(labels: Sequence[str], ids: Sequence[str], method: str, seed: int) -> Rebalanced:
    """'cap': every class cut to the smallest; 'upsample': every class repeated up to the
    largest; rows are taken in hash order, so the choice is deterministic."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        by_label[label].append(index)
    if method == "none" or len(by_label) < 2:
        return Rebalanced(list(range(len(labels))), 0, 0)
    for members in by_label.values():
        members.sort(key=lambda i: unit_hash(seed, "balance:" + ids[i]))
    sizes = [len(m) for m in by_label.values()]
    target = min(sizes) if method == "cap" else max(sizes)
    chosen: list[int] = []
    for members in by_label.values():
        chosen += [members[k % len(members)] for k in range(target)]
    chosen.sort()
    return Rebalanced(
        chosen, removed=max(0, len(labels) - len(set(chosen))), added=len(chosen) - len(set(chosen))
    )


def class_shares(labels: Sequence[str]) -> dict[str, float]:
    counts = Counter(labels)
    total = sum(counts.values())
    return {label: counts[label] / total for label in sorted(counts)} if total else {}
