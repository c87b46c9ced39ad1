"""The training matrices built from an event log, checked against a plain pandas reading of
the same rules (drop repeats keeping the last event, rank each user's pairs from the latest,
weigh a pair by its strongest event) on unsorted logs with ties, repeats and custom events."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmrec.data import columns as C
from llmrec.data.events import EventRules
from llmrec.data.ids import IdMap
from llmrec.data.matrix import TrainData, in_log_order, log_order

# two negative weights: a pair with only negative events keeps the most negative one
RULES = EventRules({"add_to_cart": "cart", "stars": "rate", "hide": "dislike"},
                   {"view": 0.5, "hide": -3.0})  # fmt: skip
EVENTS = np.array(
    ["view", "click", "add_to_cart", "purchase", "rate", "stars", "dislike", "hide", "hide"]
)


def _log(seed: int, n: int, n_users: int, n_items: int, n_stamps: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    events = EVENTS[rng.integers(0, len(EVENTS), n)]
    values = np.where(rng.random(n) < 0.5, rng.integers(1, 6, n).astype(float), np.nan)
    return pd.DataFrame(
        {
            "user_idx": rng.integers(0, n_users, n),
            "item_idx": rng.integers(0, n_items, n),
            C.TIMESTAMP: rng.integers(0, n_stamps, n) * 1_000_003,  # few stamps: many ties
            C.EVENT: pd.Categorical(events),
            C.VALUE: values,
        }
    )


def _reference(log: pd.DataFrame, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    log = log.sort_values(["user_idx", C.TIMESTAMP, "item_idx"], kind="stable")
    log = log.reset_index(drop=True)
    pairs = log.drop_duplicates(["user_idx", "item_idx"], keep="last")
    rank = pairs.groupby("user_idx").cumcount(ascending=False) + 1
    w = [RULES.weight_of(str(e)) for e in log[C.EVENT]]
    rated = [RULES.aliases.get(str(e), str(e)) == "rate" for e in log[C.EVENT]]
    w = np.where(np.array(rated) & log[C.VALUE].notna(), log[C.VALUE], w)
    g = pd.Series(w).groupby([log["user_idx"], log["item_idx"]])
    hi, lo = g.max(), g.min()
    out = {name: np.zeros(shape, np.float32) for name in ("matrix", "recency", "strength")}
    out["matrix"][pairs["user_idx"], pairs["item_idx"]] = 1
    out["recency"][pairs["user_idx"], pairs["item_idx"]] = rank
    u, i = hi.index.get_level_values(0), hi.index.get_level_values(1)
    out["strength"][u, i] = np.where(hi > 0, hi, lo)
    return out


@pytest.mark.parametrize(("seed", "n_stamps"), [(0, 3), (1, 50), (2, 10_000)])
def test_matrices_match_the_pandas_reading(seed: int, n_stamps: int) -> None:
    log = _log(seed, 3_000, 40, 60, n_stamps)
    users, items = IdMap(np.arange(45).astype(str)), IdMap(np.arange(70).astype(str))
    data = TrainData.build(log, users, items, rules=RULES)
    want = _reference(log, (45, 70))
    assert data.strength is not None
    for name, got in [("matrix", data.matrix), ("recency", data.recency),
                      ("strength", data.strength)]:  # fmt: skip
        assert got.has_sorted_indices, name
        np.testing.assert_array_equal(got.toarray(), want[name], err_msg=name)
    # the stored log is in log order with the events it was given
    kept = data.log
    assert in_log_order(kept["user_idx"].to_numpy(), kept[C.TIMESTAMP].to_numpy(),
                        kept["item_idx"].to_numpy())  # fmt: skip
    assert sorted(kept[C.EVENT].astype(str)) == sorted(log[C.EVENT].astype(str))


def test_an_empty_log_builds_empty_matrices() -> None:
    log = _log(0, 0, 1, 1, 1)
    data = TrainData.build(log, IdMap(np.array(["u"])), IdMap(np.array(["a", "b"])))
    assert data.matrix.shape == (1, 2) and data.matrix.nnz == 0 and data.recency.nnz == 0


@pytest.mark.parametrize("packed", [True, False])
def test_log_order_is_a_stable_lexsort(packed: bool) -> None:
    rng = np.random.default_rng(3)
    n = 5_000
    # huge stamps still pack (by their rank); when users x stamps x items pass 2**63 the
    # lexsort fallback must give the same order
    u, t = rng.integers(0, 3_000, n), rng.integers(0, 4_000, n) * 10**15
    i = rng.integers(0, 30 if packed else 2**40, n)
    order = log_order(u, t, i)
    assert order is not None
    np.testing.assert_array_equal(order, np.lexsort((i, t, u)))
    assert log_order(u[order], t[order], i[order]) is None
    # negative stamps (before 1970) sort too
    t = t - 2 * int(t.max())
    np.testing.assert_array_equal(log_order(u, t, i), np.lexsort((i, t, u)))


def test_weights_of_reads_categoricals_arrays_and_gaps() -> None:
    ev = ["view", "stars", "stars", "add_to_cart", "zap", None, "rate"]
    val = np.array([9.0, 2.0, np.nan, 9.0, np.nan, np.nan, 5.0])
    want = [0.5, 2.0, 1.0, 3.0, 1.0, 1.0, 5.0]  # unknown names and gaps weigh 1
    for events in (np.array(ev, dtype=object), pd.Series(ev, dtype="category"),
                   pd.Series(ev, dtype="str")):  # fmt: skip
        assert RULES.weights_of(events, val).tolist() == want


def test_idmap_index_marks_unknown_and_keeps_numeric_looking_ids() -> None:
    ids = IdMap.from_values(["10", "9", "007", "x"])
    got = ids.index(pd.Series(["9", "9", "10", "7", "007", "nope", "x", "10"], dtype="str"))
    at = {k: ids.position(k) for k in ("9", "10", "007", "x")}
    assert got.tolist() == [at["9"], at["9"], at["10"], -1, at["007"], -1, at["x"], at["10"]]
    assert ids.index(np.array([9, 10])).tolist() == [at["9"], at["10"]]
