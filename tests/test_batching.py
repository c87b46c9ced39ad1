"""Batching of uncached lists (#23 item 1): concurrent requests are scored in one model call,
and each list is exactly the list that request gets alone: shop data with context columns,
repeats, custom events, dislikes, a cold user, rerankers and numeric-looking ids, and
MovieLens-100K."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from llmrec.data.dataset import Dataset
from llmrec.rerank import RerankSpec
from llmrec.service.app import Service, create_app
from llmrec.service.batching import Batcher
from llmrec.service.keys import create_key
from llmrec.service.listing import Ask, Recommended
from llmrec.service.live import LiveModel
from llmrec.service.store import Store
from llmrec.testing.fixtures import shop_dataset
from llmrec.testing.server import train_model_dir


def _wait_queued(b: Batcher[object, object], n: int) -> None:
    for _ in range(2000):  # a condition, not a duration: the callers are queued
        with b._queue_lock:
            if len(b._queue) >= n:
                return
        threading.Event().wait(0.005)
    raise AssertionError(f"{n} callers never queued")


def test_callers_queued_behind_a_run_share_the_next_and_get_their_own_results() -> None:
    runs: list[list[int]] = []

    def run(items: list[int]) -> list[int | BaseException]:
        runs.append(items)
        return [ValueError(f"bad {i}") if i < 0 else i * 10 for i in items]

    lock = threading.Lock()
    b: Batcher[int, int] = Batcher(run, lock, max_batch=4)
    sizes: list[int] = []
    b.on_run = sizes.append
    with ThreadPoolExecutor(8) as pool:
        with lock:  # a run in progress: everyone queues behind it
            futures = [pool.submit(b.submit, i) for i in (1, 2, -3, 4, 5, 6)]
            _wait_queued(b, 6)
        assert [f.result() for f in futures if f is not futures[2]] == [10, 20, 40, 50, 60]
        with pytest.raises(ValueError, match="bad -3"):
            futures[2].result()  # only that caller fails
    assert sorted(len(r) for r in runs) == [2, 4]  # max_batch: the rest wait for the next run
    assert sorted(x for r in runs for x in r) == [-3, 1, 2, 4, 5, 6]
    assert sorted(sizes) == [2, 4]


def test_a_failed_run_fails_its_callers_and_the_next_run_works() -> None:
    calls = {"n": 0}

    def run(items: list[int]) -> list[int | BaseException]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("model gone")
        return items

    b: Batcher[int, int] = Batcher(run)
    with pytest.raises(OSError, match="model gone"):
        b.submit(1)
    assert b.submit(2) == 2


def _same(a: list[Recommended], b: list[Recommended]) -> None:
    assert [r.item_id for r in a] == [r.item_id for r in b]
    assert [r.source for r in a] == [r.source for r in b]
    # float32 matrix products sum in another order when the batch is wider: scores agree to
    # about 1e-4 (features that feed the ranker included), not bit for bit.
    np.testing.assert_allclose([r.score for r in a], [r.score for r in b], rtol=1e-4, atol=1e-3)


def _alone_and_together(live: LiveModel, asks: list[Ask]) -> int:
    """Each ask scored alone, then all in one run: the same lists. Returns how many lists
    were not empty."""
    alone = []
    for a in asks:
        live._cache.clear()
        (one,) = live._lists([a])
        assert not isinstance(one, BaseException), one
        alone.append(one)
    live._cache.clear()
    together = live._lists(asks)
    for x, y in zip(alone, together, strict=True):
        assert not isinstance(y, BaseException), y
        _same(x, y)
    return sum(bool(x) for x in alone)


@pytest.fixture(scope="module")
def shop_live(tmp_path_factory: pytest.TempPathFactory) -> LiveModel:
    tmp = tmp_path_factory.mktemp("batching-shop")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMREC_HOME", str(tmp / "home"))
        folder = train_model_dir(shop_dataset(), tmp / "shop-ranker")
    store = Store(f"sqlite:///{tmp / 'events.db'}")
    now = 1_700_000_000
    store.add_events(
        [  # dislikes (their near-duplicates leave the lists too) and a new event after training
            {"user_id": "042", "item_id": "0000", "event": "dislike", "timestamp": now},
            {"user_id": "NaN", "item_id": "0001", "event": "dislike", "timestamp": now},
            {"user_id": "7.0", "item_id": "1e3", "event": "add_to_cart", "timestamp": now},
        ]
    )
    return LiveModel(folder, store, llm="off", refresh_every=0.0)


def test_batched_lists_are_the_lists_scored_alone_on_shop_data(shop_live: LiveModel) -> None:
    users = [*shop_live.model.users_.ids.tolist(), "never-seen"]  # the last one is cold
    mmr = RerankSpec.parse("mmr:0.5")
    asks = [Ask(u, 5 + i % 3, (), None) for i, u in enumerate(users)]
    asks += [Ask(u, 4, (("device", "mobile"),), None) for u in users[::3]]
    asks += [Ask(u, 6, (("device", "desktop"), ("scenario", "home")), mmr) for u in users[::4]]
    assert _alone_and_together(shop_live, asks) == len(asks)


def test_concurrent_requests_form_one_run_with_the_same_answers(shop_live: LiveModel) -> None:
    users = ["042", "NaN", "7.0", "000", "013", "never-seen"]
    expected = {}
    for u in users:
        shop_live._cache.clear()
        expected[u] = shop_live.recommend(u, 5, {"device": "mobile"})
    shop_live._cache.clear()
    sizes: list[int] = []
    shop_live.batches.on_run = sizes.append
    with ThreadPoolExecutor(len(users)) as pool:
        with shop_live._lock:  # a run in progress
            futures = {
                u: pool.submit(shop_live.recommend, u, 5, {"device": "mobile"}) for u in users
            }
            _wait_queued(shop_live.batches, len(users))
        for u, f in futures.items():
            _same(f.result(), expected[u])
    assert sizes == [len(users)]
    blocked = shop_live.exclusions()
    assert "0000" not in {r.item_id for r in futures["042"].result()}
    assert blocked["042"] >= {"0000"}


@pytest.mark.slow
def test_batched_lists_are_the_lists_scored_alone_on_movielens(
    ml100k: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMREC_HOME", str(tmp_path / "home"))
    folder = train_model_dir(ml100k, tmp_path / "ml-ranker")
    live = LiveModel(folder, Store(f"sqlite:///{tmp_path / 'events.db'}"), llm="off")
    users = np.random.default_rng(0).choice(live.model.users_.ids, 120, replace=False)
    asks = [Ask(str(u), 10, (), None) for u in users]
    asks += [Ask(str(u), 10, (("timestamp", "893286638"),), None) for u in users[:30]]
    assert _alone_and_together(live, asks) == len(asks)


def test_metrics_count_the_lists_in_each_batch(
    tmp_path: Path, served_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMREC_HOME", str(tmp_path / "home"))
    store = Store(f"sqlite:///{tmp_path / 'events.db'}")
    service = Service(store, served_model_dir, llm="off")
    client = TestClient(create_app(service))
    h = {"Authorization": f"Bearer {create_key(store, 'admin')}"}
    users = [f"u{i}" for i in range(5)]

    def get(u: str) -> Any:
        return client.get("/v1/recommendations", params={"user_id": u, "k": 3}, headers=h)

    live = service.live
    with ThreadPoolExecutor(len(users)) as pool:
        with live._lock:  # a run in progress: the five requests queue for the next
            futures = [pool.submit(get, u) for u in users]
            _wait_queued(live.batches, len(users))
        answers = [f.result() for f in futures]
    assert [a.status_code for a in answers] == [200] * len(users)
    assert all(len(a.json()["items"]) == 3 for a in answers)
    text = client.get("/metrics", headers=h).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    batches = {s.name: s.value for s in families["llmrec_recommendation_batch_lists"].samples}
    assert batches["llmrec_recommendation_batch_lists_sum"] == len(users)
    assert batches["llmrec_recommendation_batch_lists_count"] == 1
