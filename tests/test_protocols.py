from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmrec.data import columns as C
from llmrec.data.ids import IdMap, sorted_ids
from llmrec.data.splits import full_train, holdout
from llmrec.errors import DataError
from llmrec.eval.protocols import cold_items, loo, make_split
from llmrec.testing import block_dataset, tiny_dataset


def test_sorted_ids_integer_then_string_order() -> None:
    assert sorted_ids(["10", "9", "1", "10"]).tolist() == ["1", "9", "10"]
    assert sorted_ids(["10", "9", "a"]).tolist() == ["10", "9", "a"]
    m = IdMap.from_values(["b", "a"])
    assert m.index(["a", "zz", "b"]).tolist() == [0, -1, 1] and "a" in m


def _by_user(stage, split, col="targets"):
    users = split.train.users.ids[stage.user_idx]
    items = split.train.items.ids[stage.targets[:, 0]]
    return dict(zip(users, items, strict=True))


def test_loo_split_by_hand() -> None:
    s = loo(tiny_dataset())
    assert s.train.users.ids.tolist() == ["u1", "u2", "u3", "u4"]  # u5 has < 3: dropped
    assert s.train.items.ids.tolist() == ["1", "2", "3", "4", "9", "10"]
    # u1: 9 and 10 share t=30; integer order puts 10 last -> test 10, validation 9
    assert _by_user(s.test, s) == {"u1": "10", "u2": "4", "u3": "1", "u4": "10"}
    assert _by_user(s.valid, s) == {"u1": "9", "u2": "3", "u3": "4", "u4": "9"}
    assert s.train.matrix.nnz == 16 - 2 - 4 * 2
    # validation excludes training items; test also the validation item
    u1 = 0
    ex_valid = set(s.train.items.ids[s.valid.exclude[u1].indices])
    ex_test = set(s.train.items.ids[s.test.exclude[u1].indices])
    assert ex_valid == {"1", "2"} and ex_test == {"1", "2", "9"}


def test_loo_string_ids_break_ties_as_strings() -> None:
    ds = tiny_dataset()
    ds.interactions[C.ITEM_ID] = "i" + ds.interactions[C.ITEM_ID]
    ds.items[C.ITEM_ID] = "i" + ds.items[C.ITEM_ID]
    s = loo(ds)
    assert _by_user(s.test, s)["u1"] == "i9"  # "i10" < "i9" as strings


def test_loo_needs_users_with_three_interactions() -> None:
    ds = tiny_dataset()
    ds.interactions = ds.interactions[ds.interactions[C.USER_ID] == "u5"]
    with pytest.raises(DataError, match="3 or more"):
        loo(ds)


def test_cold_items_holds_items_out_of_training() -> None:
    ds = block_dataset(n_users=60, n_items=40)
    s = cold_items(ds, seed=3)
    test_cold = s.test.candidates
    valid_cold = s.valid.candidates
    assert len(test_cold) == 4 and len(valid_cold) == 4
    assert not set(test_cold) & set(valid_cold)
    assert s.train.matrix[:, test_cold].nnz == 0
    assert s.valid_train.matrix[:, np.r_[test_cold, valid_cold]].nnz == 0
    assert s.valid_train is not s.train
    # every test target is a held-out item the user really interacted with
    inter = ds.interactions
    for row, u in enumerate(s.test.user_idx):
        uid = s.train.users.ids[u]
        got = {s.train.items.ids[test_cold[t]] for t in s.test.targets[row] if t >= 0}
        truth = set(inter[inter[C.USER_ID] == uid][C.ITEM_ID]) & set(s.train.items.ids[test_cold])
        assert got == truth
    # a different seed draws different items
    assert not np.array_equal(cold_items(ds, seed=4).test.candidates, test_cold)


def test_unknown_protocol() -> None:
    with pytest.raises(DataError, match="unknown protocol"):
        make_split(tiny_dataset(), "random")


@pytest.mark.realdata
def test_ml100k_split_sizes(ml100k) -> None:
    s = loo(ml100k)
    assert (len(s.train.log), len(s.valid.user_idx), len(s.test.user_idx)) == (98114, 943, 943)
    assert s.train.n_items == 1682
    # 415 users have validation and test items sharing a timestamp (RESOURCES.md)
    inter = ml100k.interactions
    last_two = inter.sort_values([C.USER_ID, C.TIMESTAMP]).groupby(C.USER_ID).tail(2)
    ties = last_two.groupby(C.USER_ID)[C.TIMESTAMP].nunique().eq(1).sum()
    assert ties == 415
    assert isinstance(ml100k.interactions, pd.DataFrame)


def _events(rows: list[tuple[str, str, int]]):
    ds = tiny_dataset()
    ds.interactions = pd.DataFrame(rows, columns=[C.USER_ID, C.ITEM_ID, C.TIMESTAMP])
    return full_train(ds)


def test_holdout_validates_on_each_users_latest_event() -> None:
    """Repeats included (measured best: bench_holdout); the split counts them."""
    data = _events(
        [("u1", "1", 1), ("u1", "2", 2), ("u1", "3", 3), ("u1", "1", 4),
         ("u2", "1", 1), ("u2", "2", 2), ("u2", "4", 3),
         ("u3", "1", 1), ("u3", "2", 2)]
    )  # fmt: skip
    h = holdout(data)
    items = data.items.ids
    assert dict(zip(data.users.ids[h.valid.user_idx], items[h.valid.targets[:, 0]],
                    strict=True)) == {"u1": "1", "u2": "4"}  # fmt: skip
    assert h.repeats == {"valid_targets_repeat": 1, "valid_users": 2}  # u3: 2 events only
    assert len(h.valid_train.log) == len(data.log) - 2
    assert h.valid.exclude[0, h.valid.targets[0, 0]]  # u1's repeat is history (kept by metrics)
    assert h.test_history is data and h.protocol == "holdout"
    again = holdout(data, repeats=True)  # a model that recommends what users had
    assert again.protocol == "repeats" and again.valid.exclude is None
    assert np.array_equal(again.valid.targets, h.valid.targets)


def test_holdout_on_movielens_has_no_repeat_targets(ml100k) -> None:
    h = holdout(full_train(ml100k))
    assert h.repeats == {"valid_targets_repeat": 0, "valid_users": 943}


def test_holdout_needs_users_with_three_events() -> None:
    data = _events([("u1", "1", 1), ("u1", "2", 2)])
    with pytest.raises(DataError, match="3 or more interactions"):
        holdout(data)
