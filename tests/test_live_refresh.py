"""A refresh applies only what new events change (#23, incremental state): the acting users'
state (``observe_users``) and item-level statistics (``observe_item_events``, cold-start
popularity), not a pass over the log. Tested against a twin live model that observes the
whole log at every refresh: the same lists, scores, counts and per-item statistics on shop
data (custom events, repeats, context columns, odd ids), through new users, a user with only
a dislike, an event older than the log, a new context value, a new item, a window of recent
popularity that moves, compaction of the log and a deletion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from llmrec.data import columns as C
from llmrec.ranking import features
from llmrec.service import coldstart, eventlog
from llmrec.service.eventlog import EventLog
from llmrec.service.live import LiveModel
from llmrec.service.store import Store
from llmrec.testing.fixtures import shop_dataset
from llmrec.testing.server import train_model_dir

T0 = 1_600_000_000  # the shop log's first second; it spans under a day
DAY = 86_400
CONTEXTS: list[dict[str, str]] = [{}, {"device": "mobile"}, {"device": "tv", "location": "FR"}]


@pytest.fixture
def twins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[LiveModel, LiveModel]:
    """Two live models on one trained folder: ``inc`` refreshes incrementally, ``whole``
    observes the whole log at every refresh. Thresholds are small so that arrived events
    are merged into the sorted arrays inside the test."""
    monkeypatch.setenv("LLMREC_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(eventlog, "COMPACT_MIN", 40)
    monkeypatch.setattr(eventlog, "COMPACT_SHARE", 10**6)
    monkeypatch.setattr(features, "MERGE_MIN", 30)
    monkeypatch.setattr(features, "MERGE_SHARE", 10**6)
    monkeypatch.setattr(coldstart, "TAIL_MIN", 20)
    monkeypatch.setattr(coldstart, "TAIL_SHARE", 10**6)
    folder = train_model_dir(shop_dataset(), tmp_path / "shop-ranker")
    inc, whole = (
        LiveModel(folder, Store(f"sqlite:///{tmp_path / f'{n}.db'}"), llm="off", refresh_every=3600)
        for n in ("inc", "whole")
    )
    return inc, whole


def _event(user: str, item: str, event: str, ts: int, **extra: Any) -> dict[str, Any]:
    return {C.USER_ID: user, C.ITEM_ID: item, C.TIMESTAMP: ts, C.EVENT: event,
            C.VALUE: extra.pop(C.VALUE, None), **{c: None for c in C.CONTEXT_COLUMNS},
            **extra}  # fmt: skip


def _apply(inc: LiveModel, whole: LiveModel, rows: list[dict[str, Any]]) -> None:
    for live in (inc, whole):
        live.add_events(rows)
    whole._whole = True
    inc.refresh()
    whole.refresh()
    assert not inc._whole  # the incremental path ran


def _lists(live: LiveModel, users: list[str]) -> dict[tuple[str, int], list[tuple[str, float]]]:
    return {
        (u, n): [(r.item_id, round(r.score, 4)) for r in live.recommend(u, 8, ctx)]
        for u in users
        for n, ctx in enumerate(CONTEXTS)
    }


def _same(inc: LiveModel, whole: LiveModel) -> None:
    users = [*whole.user_ids(), "never seen"]
    assert _lists(inc, users) == _lists(whole, users)
    assert np.array_equal(inc._user_events, whole._user_events)
    assert np.array_equal(inc._item_events, whole._item_events)
    np.testing.assert_array_equal(inc._pop, whole._pop)
    assert inc._pop_ctx.keys() == whole._pop_ctx.keys()
    for col, (index, counts) in whole._pop_ctx.items():
        mine, theirs = inc._pop_ctx[col]
        assert mine.keys() == index.keys()
        for v, j in index.items():
            np.testing.assert_array_equal(theirs[:, mine[v]], counts[:, j])
    a, w = inc.model.events_, whole.model.events_  # type: ignore[attr-defined]
    n = len(whole.model.items_)
    items = np.repeat(np.arange(n), 4)
    t = np.tile(np.array([T0, T0 + 1000, T0 + 20 * DAY, T0 + 90 * DAY]), n)
    assert np.array_equal(
        a.item_events_between(items, t - 30 * DAY, t), w.item_events_between(items, t - 30 * DAY, t)
    )
    np.testing.assert_array_equal(a.last_seen_before(items, t), w.last_seen_before(items, t))
    assert a.now == w.now


def test_incremental_refreshes_equal_observing_the_whole_log(
    twins: tuple[LiveModel, LiveModel],
) -> None:
    inc, whole = twins
    _same(inc, whole)
    rng = np.random.default_rng(0)
    items = list(whole.model.items_.ids)
    day10 = T0 + 10 * DAY
    _apply(inc, whole, [
        _event("042", "0003", "view", day10), _event("042", "0003", "view", day10),  # a repeat
        _event("new user", "1e3", "add_to_cart", day10 + 1, device="tv"),  # a new value
        _event("NaN", "0005", "purchase", day10, value=12.0, location="FR"),
    ])  # fmt: skip
    _same(inc, whole)
    _apply(inc, whole, [_event("another", "0007", "dislike", day10 + 2)])  # a dislike alone
    _apply(inc, whole, [_event("7.0", "0004", "click", T0 - 10**6)])  # older than the log
    _same(inc, whole)
    item = pd.DataFrame({C.ITEM_ID: ["new-book"], C.TITLE: ["Star Voyage Returns"],
                         "description": ["A space adventure, book 99."]})  # fmt: skip
    for live in (inc, whole):
        live.put_item(item)
    _apply(inc, whole, [_event("000", "new-book", "view", day10 + 3, device="mobile")])
    _same(inc, whole)
    users = whole.user_ids()
    later = T0 + 45 * DAY  # the window moves past every earlier event; 120 events fill it
    burst = [
        _event(
            str(rng.choice(users)),
            str(rng.choice(items)),
            "view",
            later + k,
            device=str(rng.choice(["mobile", "tv", "desktop"])),
        )  # fmt: skip
        for k in range(120)
    ]
    _apply(inc, whole, burst[:60])
    _apply(inc, whole, burst[60:])
    assert inc._log.n_arrived < 60  # compacted meanwhile (threshold 40 here)
    assert len(inc.model.events_.new_key) < 60  # type: ignore[attr-defined]  # merged
    assert sum(len(t.ts) for t in inc._recent._tail) < 60  # merged into the sorted events
    _same(inc, whole)
    for live in (inc, whole):
        live.delete_user("042")  # a deletion: the next refresh observes the whole log
    _apply(inc, whole, [_event("001", "0006", "view", later + 500)])
    _same(inc, whole)


def test_the_event_log_reads_users_in_a_full_frames_order() -> None:
    data = shop_dataset().interactions
    log = data.assign(
        user_idx=pd.factorize(data[C.USER_ID])[0], item_idx=pd.factorize(data[C.ITEM_ID])[0]
    )
    log = log.reindex(columns=list(eventlog.COLUMNS))
    half = len(log) // 2
    el = EventLog(log.iloc[:half])
    for row in log.iloc[half:].itertuples(index=False):
        el.append(tuple(row))
    assert len(el) == len(log) and el.n_arrived == len(log) - half and el.live == len(log) - half
    rows = np.array([0, 3, 7])
    mine = el.users(rows)
    expected = log[log["user_idx"].isin(rows)].sort_values("user_idx", kind="stable")
    key = ["user_idx", C.TIMESTAMP, C.ITEM_ID, C.EVENT]
    pd.testing.assert_frame_equal(
        mine[key].sort_values("user_idx", kind="stable").reset_index(drop=True),
        expected[key].reset_index(drop=True),
        check_dtype=False,
    )
    assert el.compact(force=True) and el.n_arrived == 0 and len(el) == len(log)
    assert np.array_equal(el.user_counts[: log["user_idx"].max() + 1],
                          np.bincount(log["user_idx"]))  # fmt: skip
    el.delete_user(3)
    assert len(el) == len(log) - int((log["user_idx"] == 3).sum())
    assert len(el.users(np.array([3]))) == 0 and el.user_counts[3] == 0


def test_recency_ranks_match_a_descending_cumcount() -> None:
    from llmrec.data.matrix import _rank_from_end

    users = np.array([0, 0, 0, 2, 5, 5, 7, 7, 7, 7])
    expected = pd.Series(users).groupby(users).cumcount(ascending=False).to_numpy() + 1
    assert _rank_from_end(users).tolist() == expected.tolist() == [3, 2, 1, 1, 2, 1, 4, 3, 2, 1]
    assert _rank_from_end(np.array([], dtype=np.int64)).tolist() == []
