"""Group commit of events (#23): concurrent requests share a transaction, each gets its own
answer, a bad request fails alone, a failed transaction fails every request in it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from llmrec.service.app import Service, create_app
from llmrec.service.errors import UnknownItemError
from llmrec.service.group_commit import GroupCommit, Rows
from llmrec.service.keys import create_key
from llmrec.service.store import Store, Stored


class Gate:
    """A flush that blocks its first call until released, so later requests queue up."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.batches: list[list[Rows]] = []
        self.seq = 0

    def __call__(self, batches: list[Rows]) -> list[list[Stored] | UnknownItemError]:
        self.batches.append(batches)
        if len(self.batches) == 1:
            self.entered.set()
            assert self.release.wait(10)
        out: list[list[Stored] | UnknownItemError] = []
        for rows in batches:
            if any(r["item_id"] == "missing" for r in rows):
                out.append(UnknownItemError("missing"))
                continue
            stored = []
            for _ in rows:
                self.seq += 1
                stored.append(Stored(self.seq, False))
            out.append(stored)
        return out


def _queued(gc: GroupCommit, n: int) -> bool:
    with gc._queue_lock:
        return len(gc._queue) == n


def test_requests_waiting_on_a_flush_share_the_next_one() -> None:
    gate = Gate()
    gc = GroupCommit(gate)
    sizes: list[int] = []
    gc.on_run = sizes.append
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(gc.submit, [{"item_id": "a"}])
        assert gate.entered.wait(10)  # the first transaction is "on disk"
        rest = [pool.submit(gc.submit, [{"item_id": "b"}] * (i + 1)) for i in range(4)]
        bad = pool.submit(gc.submit, [{"item_id": "missing"}])
        for _ in range(1000):  # all five queued behind the flush (no timing: a condition)
            if _queued(gc, 5):
                break
            threading.Event().wait(0.01)
        gate.release.set()
        assert [s.seq for s in first.result()] == [1]
        results = [f.result() for f in rest]
        with pytest.raises(UnknownItemError):
            bad.result()
    assert [len(r) for r in results] == [1, 2, 3, 4]  # each its own rows' results
    seqs = [s.seq for r in results for s in r]
    assert sorted(seqs) == list(range(2, 12))  # one sequence, nothing lost or repeated
    assert [len(b) for b in gate.batches] == [1, 5]  # two transactions for six requests
    assert sizes == [1, 5]


def test_a_failed_transaction_fails_every_request_in_it() -> None:
    def broken(batches: list[Rows]) -> list[list[Stored] | UnknownItemError]:
        raise OSError("disk full")

    gc = GroupCommit(broken)
    with pytest.raises(OSError, match="disk full"):
        gc.submit([{"item_id": "a"}])
    gc._run = lambda batches: [[Stored(1, False)] for _ in batches]
    assert gc.submit([{"item_id": "a"}]) == [Stored(1, False)]  # the writer is not stuck


def test_concurrent_posts_are_stored_once_each_and_counted(
    tmp_path: Path, served_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMREC_HOME", str(tmp_path / "home"))
    store = Store(f"sqlite:///{tmp_path / 'events.db'}")
    client = TestClient(create_app(Service(store, served_model_dir, llm="off")))
    h = {"Authorization": f"Bearer {create_key(store, 'admin')}"}
    item = "1"  # in the block data's catalogue

    def send(i: int) -> int:
        body = {"user_id": f"u{i % 7}", "item_id": item, "event": "click", "event_id": f"e{i}"}
        if i == 13:
            body["item_id"] = "no-such-item"
        return client.post("/v1/events", json=body, headers=h).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(send, range(80)))
    assert codes.count(202) == 79 and codes[13] == 422
    stored = store.events_since(0)["event_id"].tolist()
    assert sorted(stored) == sorted(f"e{i}" for i in range(80) if i != 13)
    again = client.post(  # a retry of stored ids is a duplicate, not a second copy
        "/v1/events",
        json=[{"user_id": "u0", "item_id": item, "event": "click", "event_id": "e0"}],
        headers=h,
    )
    assert again.json() == {"stored": 0, "duplicates": 1}
    text = client.get("/metrics", headers=h).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    commits = {s.name: s.value for s in families["llmrec_event_commit_requests"].samples}
    # every request went through a commit (80 concurrent, the 422 one included, + the retry)
    assert commits["llmrec_event_commit_requests_sum"] == 81
    assert 1 <= commits["llmrec_event_commit_requests_count"] <= 81
