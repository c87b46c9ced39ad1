"""Cold-start state kept incrementally (#23): the recent-popularity window as events arrive
in any order equals counting the whole log again, and the text neighbours that event-less
items borrow popularity from equal a full similarity sort, in blocks, without items x items."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmrec.service import coldstart
from llmrec.service.coldstart import DAY, RECENT_DAYS, RecentPopularity, TextNeighbours


def _reference(ts: np.ndarray, items: np.ndarray, device: np.ndarray, n: int):
    """What the live model computed from the whole log before: the window's counts (all time
    under 100 events), and per device value the counts over the same events."""
    recent = ts >= ts.max() - RECENT_DAYS * DAY
    if recent.sum() < coldstart.MIN_RECENT:
        recent = np.ones(len(ts), bool)
    pop = np.bincount(items[recent], minlength=n).astype(float)
    vals = pd.Series(device[recent], dtype=object).astype("string").fillna("").to_numpy()
    index, codes = np.unique(vals, return_inverse=True)
    counts = np.zeros((n, len(index)))
    np.add.at(counts, (items[recent], codes), 1.0)
    return pop, {str(v): counts[:, j] for j, v in enumerate(index)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recent_popularity_equals_recounting_the_log(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(coldstart, "TAIL_MIN", 16)  # merges happen inside the test
    rng = np.random.default_rng(seed)
    n, t0 = 40, 1_700_000_000
    rp = RecentPopularity(n, {"device"})
    ts, items, device = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, object)
    for step in range(30):
        k = int(rng.integers(1, 25))
        # mostly forward in time, sometimes late (older than the window) or far ahead
        new_ts = t0 + step * 3 * DAY + rng.integers(-40 * DAY, 2 * DAY, size=k)
        new_items = rng.integers(0, n, size=k)
        new_dev = rng.choice(np.array(["tv", "mobile", None], dtype=object), size=k)
        rp.add(new_ts, new_items, {"device": new_dev})
        ts, items = np.r_[ts, new_ts], np.r_[items, new_items]
        device = np.r_[device, new_dev]
        pop, ctx = rp.counts()
        want_pop, want_ctx = _reference(ts, items, device, n)
        np.testing.assert_array_equal(pop, want_pop)
        index, counts = ctx["device"]
        assert set(index) == set(want_ctx)
        for v, j in index.items():
            np.testing.assert_array_equal(counts[:, j], want_ctx[v])
    np.testing.assert_array_equal(rp.all, np.bincount(items, minlength=n))


def _brute(vecs: np.ndarray, fresh: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sims = vecs[fresh] @ vecs.T
    sims[:, fresh] = -np.inf
    near = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return near, np.maximum(np.take_along_axis(sims, near, axis=1), 0)


def test_text_neighbours_equal_a_full_sort_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coldstart, "NEAR_BLOCK", 7)
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(300, 16))
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    counts = rng.integers(0, 3, size=300).astype(float)  # a third have no events
    fresh = np.flatnonzero(counts == 0)
    near, w = TextNeighbours().of(fresh, vecs, counts)
    want_near, want_w = _brute(vecs, fresh, coldstart.NEAR)
    np.testing.assert_array_equal(near, want_near)
    np.testing.assert_allclose(w, want_w)
    # among the most popular only, when the pool is smaller than the items with events
    monkeypatch.setattr(coldstart, "NEAR_POOL", 12)
    near, w = TextNeighbours().of(fresh, vecs, counts)
    pool = set(np.argsort(-counts, kind="stable")[:12].tolist())
    assert set(near.ravel().tolist()) <= pool and (w >= 0).all()


def test_text_neighbours_are_computed_once_per_item_and_pad_when_few() -> None:
    vecs = np.eye(4)
    nb = TextNeighbours()
    counts = np.array([3.0, 0.0, 0.0, 1.0])
    near, w = nb.of(np.array([1, 2]), vecs, counts)
    assert (near[:, 2:] == -1).all() and (w[:, 2:] == 0).all()  # two items have events
    assert set(near[0, :2].tolist()) == {0, 3}
    nb.near[1, 0] = 99  # a cached row is not computed again...
    assert nb.of(np.array([1]), vecs, counts)[0][0, 0] == 99
    nb.forget(np.array([1]))  # ...until its item's text changes
    assert nb.of(np.array([1]), vecs, counts)[0][0, 0] in (0, 3)
