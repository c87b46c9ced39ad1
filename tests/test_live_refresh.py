"""A refresh re-reads only the users with new events (#23, incremental state): the spliced
training data equals a full build of the combined log, and the lists stay the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from llmrec.data import columns as C
from llmrec.data.ids import IdMap
from llmrec.data.matrix import TrainData
from llmrec.data.splits import full_train
from llmrec.service.live import LiveModel
from llmrec.service.store import Store
from llmrec.testing.fixtures import shop_dataset
from llmrec.testing.server import train_model_dir


def _same_data(a: TrainData, b: TrainData) -> None:
    assert np.array_equal(a.users.ids, b.users.ids)
    for x, y in ((a.matrix, b.matrix), (a.recency, b.recency), (a.weights, b.weights)):
        assert x.shape == y.shape
        x, y = sp.csr_matrix(x), sp.csr_matrix(y)
        x.sort_indices()
        y.sort_indices()
        assert np.array_equal(x.indptr, y.indptr)
        assert np.array_equal(x.indices, y.indices)
        assert np.array_equal(x.data, y.data)
    cols = list(b.log.columns)
    pd.testing.assert_frame_equal(a.log[cols], b.log, check_dtype=False)


def test_with_users_equals_a_full_build_on_shop_data() -> None:
    data = full_train(shop_dataset())  # custom events, repeats, context columns, odd ids
    log = data.log
    rng = np.random.default_rng(0)
    user = log["user_idx"].to_numpy()
    late = (rng.random(len(log)) < 0.3) & (user % 3 == 0)  # a third of users get new events
    late |= user >= data.n_users - 5  # ...and five users arrive only then (new)
    base_log = log[~late].reset_index(drop=True)
    new_log = log[late].reset_index(drop=True)
    known = IdMap(data.users.ids[: data.n_users - 5])
    base = TrainData.build(base_log, known, data.items, rules=data.rules)
    touched = np.unique(new_log["user_idx"].to_numpy())
    wanted = np.isin(base_log["user_idx"].to_numpy(), touched)
    part_log = pd.concat([base_log[wanted], new_log], ignore_index=True)
    part = TrainData.build(part_log, data.users, data.items, rules=data.rules)
    spliced = base.with_users(part, touched)
    full = TrainData.build(
        pd.concat([base_log, new_log], ignore_index=True), data.users, data.items, rules=data.rules
    )
    assert len(touched) < data.n_users  # some users keep their rows untouched
    _same_data(spliced, full)
    with pytest.raises(ValueError, match="not in rows"):
        base.with_users(part, touched[1:])


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LiveModel:
    monkeypatch.setenv("LLMREC_HOME", str(tmp_path / "home"))
    folder = train_model_dir(shop_dataset(), tmp_path / "shop-ranker")
    return LiveModel(folder, Store(f"sqlite:///{tmp_path / 'e.db'}"), llm="off")


def _event(user: str, item: str, event: str, ts: int, value: float | None = None) -> dict:
    return {C.USER_ID: user, C.ITEM_ID: item, C.TIMESTAMP: ts, C.EVENT: event, C.VALUE: value,
            **{c: None for c in C.CONTEXT_COLUMNS}}  # fmt: skip


def test_refreshes_after_events_equal_a_full_rebuild_and_give_the_same_lists(
    live: LiveModel,
) -> None:
    t = 1_800_000_000
    batches = [
        [_event("042", "0003", "view", t), _event("042", "0003", "view", t)],  # a repeat
        [_event("new user", "1e3", "add_to_cart", t + 1), _event("NaN", "0005", "purchase", t)],
        [_event("another", "0007", "dislike", t + 2)],  # a new user with only a dislike
        [_event("7.0", "0004", "click", t - 10**6), _event("new user", "0002", "view", t + 3)],
    ]
    for rows in batches:
        live.add_events(rows)
        live.refresh()
        incremental = live._data
        assert incremental is not None
        full = TrainData.build(
            pd.concat([live._base, live._live], ignore_index=True),
            IdMap(np.asarray(live._user_ids)),
            live.model.items_,
            rules=live.model.event_rules_,
        )
        _same_data(incremental, full)
    users = ["042", "new user", "NaN", "7.0", "another", "000"]
    lists = {u: [r.item_id for r in live.recommend(u, 5)] for u in users}
    assert "0003" not in lists["042"]  # seen
    live._data, live._dirty = None, True  # the same state built whole
    live.refresh()
    live._cache.clear()
    assert {u: [r.item_id for r in live.recommend(u, 5)] for u in users} == lists


def test_recency_ranks_match_a_descending_cumcount() -> None:
    from llmrec.data.matrix import _rank_from_end

    users = np.array([0, 0, 0, 2, 5, 5, 7, 7, 7, 7])
    expected = pd.Series(users).groupby(users).cumcount(ascending=False).to_numpy() + 1
    assert _rank_from_end(users).tolist() == expected.tolist() == [3, 2, 1, 1, 2, 1, 4, 3, 2, 1]
    assert _rank_from_end(np.array([], dtype=np.int64)).tolist() == []
