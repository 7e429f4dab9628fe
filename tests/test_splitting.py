import random
from collections import Counter

from pipelines.lib import dataset, splitting
from pipelines.recipe import DataSection

DATA = DataSection(sources=["x"], heldout_fraction=0.2)


def rows(n: int, start: int = 0, labels=("a",), group_every: int | None = None):
    out = []
    for i in range(start, start + n):
        row = {"id": f"{i:016x}", "messages": [], "label": labels[i % len(labels)]}
        if group_every:
            row["groups"] = [f"customer=c{i // group_every}"]
        out.append(row)
    return out


def ids(side):
    return {r["id"] for r in side}


def test_split_is_deterministic_disjoint_and_near_the_fraction():
    data = rows(2000)
    split = dataset.split_rows(data, DATA)
    assert not ids(split.train) & ids(split.heldout)
    assert len(split.train) + len(split.heldout) == 2000
    assert 0.17 < len(split.heldout) / 2000 < 0.23
    shuffled = random.Random(1).sample(data, len(data))
    assert ids(dataset.split_rows(shuffled, DATA).heldout) == ids(split.heldout)
    other_seed = dataset.split_rows(data, DATA.model_copy(update={"seed": 7}))
    assert ids(other_seed.heldout) != ids(split.heldout)


def test_held_out_rows_stay_held_out_when_rows_are_appended():
    small = dataset.split_rows(rows(500), DATA)
    grown = dataset.split_rows(rows(500) + rows(1500, start=500), DATA)
    assert ids(small.heldout) <= ids(grown.heldout)
    assert ids(small.train) <= ids(grown.train)


def test_every_group_lands_on_one_side():
    data = rows(3000, group_every=7)
    split = dataset.split_rows(data, DATA)
    train_groups = {g for r in split.train for g in r["groups"]}
    heldout_groups = {g for r in split.heldout for g in r["groups"]}
    assert not train_groups & heldout_groups
    assert 0.1 < len(heldout_groups) / (len(train_groups) + len(heldout_groups)) < 0.3


def test_rows_sharing_any_group_key_are_one_unit():
    data = [
        {"id": "1", "groups": ["customer=a"]},
        {"id": "2", "groups": ["customer=a", "conv=x"]},
        {"id": "3", "groups": ["conv=x"]},
        {"id": "4", "groups": ["customer=b"]},
    ]
    units = splitting.units([r["groups"] for r in data])
    assert units[0] == units[1] == units[2] != units[3]


def test_a_near_duplicate_cluster_decides_its_side_by_all_its_members():
    # The kept row carries the ids it replaced: if any of them is held out, so is it,
    # so content that was held out never reaches training as the data grows.
    lone = {"id": "aaaa", "messages": []}
    held_id = next(
        f"{i:x}" for i in range(10**6) if splitting.unit_hash(DATA.seed, f"split:row:{i:x}") < 0.2
    )
    train_id = next(
        f"{i:x}" for i in range(10**6) if splitting.unit_hash(DATA.seed, f"split:row:{i:x}") > 0.2
    )
    cluster = {"id": train_id, "messages": [], "near_dup_ids": [held_id]}
    split = dataset.split_rows([lone, cluster], DATA)
    assert train_id in ids(split.heldout)


def test_each_class_is_held_out_at_the_same_rate():
    data = rows(6000, labels=("pos",) * 7 + ("neg",) * 2 + ("neu",))
    split = dataset.split_rows(data, DATA)
    train_share = splitting.class_shares([r["label"] for r in split.train])
    heldout_share = splitting.class_shares([r["label"] for r in split.heldout])
    for label in ("pos", "neg", "neu"):
        assert abs(train_share[label] - heldout_share[label]) < 0.03, label


def test_rebalancing_touches_training_rows_only():
    data = rows(1000, labels=("pos",) * 8 + ("neg",) * 2)
    section = DATA.model_copy(update={"label_field": "label"})
    plain = dataset.split_rows(data, section)
    capped = dataset.split_rows(
        data,
        section.model_copy(
            update={"balance": section.balance.model_copy(update={"rebalance": "cap"})}
        ),
    )
    upsampled = dataset.split_rows(
        data,
        section.model_copy(
            update={"balance": section.balance.model_copy(update={"rebalance": "upsample"})}
        ),
    )
    for split in (capped, upsampled):
        counts = Counter(r["label"] for r in split.train)
        assert counts["pos"] == counts["neg"]
        assert ids(split.heldout) == ids(plain.heldout)
    assert ids(capped.train) < ids(plain.train) and capped.rebalanced.removed > 0
    assert ids(upsampled.train) == ids(plain.train) and upsampled.rebalanced.added > 0
    again = dataset.split_rows(
        data,
        section.model_copy(
            update={"balance": section.balance.model_copy(update={"rebalance": "cap"})}
        ),
    )
    assert [r["id"] for r in again.train] == [r["id"] for r in capped.train]
