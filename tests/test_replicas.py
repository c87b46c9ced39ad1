"""Replicas on one events store (``llmrec serve --shared-store``, service/follower.py): what one
process is told, every other one applies before its next read — events (once each), items
and deletions — first in process (two services, one SQLite file), then as two real servers.
The model is trained on the shop fixture: custom event names, context columns, repeats, ids
that look like numbers ("0042", "1e3", "NaN", "7.0")."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from llmrec.service.app import Service, create_app
from llmrec.service.keys import create_key
from llmrec.service.store import Store
from llmrec.testing.server import serve

CONTEXT = {"device": "mobile", "location": "DE", "scenario": "search"}


def ok(r: httpx.Response) -> dict:
    assert r.status_code in (200, 202), r.text
    return r.json()


def replica(folder: Path, db: Path, shared: bool = True) -> TestClient:
    store = Store(f"sqlite:///{db}")
    service = Service(store, folder, refresh_every=0.0, llm="off", shared_store=shared)
    client = TestClient(create_app(service), raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {create_key(store, 'write')}"
    return client


def listed(client: TestClient, user: str, k: int = 10) -> list[str]:
    r = client.get("/v1/recommendations", params={"user_id": user, "k": k})
    return [i["item_id"] for i in ok(r)["items"]]


def test_what_one_replica_is_told_the_other_applies(
    shop_folder: Path, tmp_path: Path, home: Path
) -> None:
    db = tmp_path / "events.db"
    a, b = replica(shop_folder, db), replica(shop_folder, db)
    top = listed(b, "NaN")[0]
    # a dislike told to A: B's next list for the user leaves the item out
    ok(a.post("/v1/events", json={"user_id": "NaN", "item_id": top, "event": "dislike"}))
    assert top not in listed(b, "NaN")
    # a new user's events (a custom event name, context) told to A: B knows them, each once
    events = [{"user_id": "0099", "item_id": i, "event": e, "context": CONTEXT}
              for i, e in (("0001", "view"), ("1e3", "add_to_cart"), ("0003", "view"))]  # fmt: skip
    ok(a.post("/v1/events", json=events))
    history = ok(b.get("/v1/users/0099"))["history"]
    assert sorted(h["item_id"] for h in history) == ["0001", "0003", "1e3"]
    ok(b.post("/v1/events", json={"user_id": "0099", "item_id": "0005", "event": "view"}))
    assert len(ok(a.get("/v1/users/0099"))["history"]) == 4  # and back: A applies B's
    assert len(ok(b.get("/v1/users/0099"))["history"]) == 4  # B's own applied once, not twice
    # an item put through A: B takes events on it and finds items similar to it
    item = {"title": "Star Voyage special", "text": "a space voyage", "genres": ["Space"],
            "year": 2001, "attributes": {"brand": "Press 1"}}  # fmt: skip
    ok(a.put("/v1/items/0500", json=item))
    ok(b.post("/v1/events", json={"user_id": "7.0", "item_id": "0500", "event": "view"}))
    assert ok(b.get("/v1/items/0500/similar", params={"k": 3}))["items"]
    # A applied its own item: following B's writes afterwards does not apply it again
    service_a = a.app.state.service  # type: ignore[attr-defined]
    reput: list[object] = []
    real = service_a.put_item
    service_a.put_item = lambda frame: reput.append(frame) or real(frame)
    assert listed(a, "7.0")
    assert reput == []
    # a user deleted through A is gone from B
    assert b.get("/v1/users/042").status_code == 200
    assert a.delete("/v1/users/042").status_code == 200
    assert b.get("/v1/users/042").status_code == 404


def test_without_shared_store_a_process_sees_only_its_own_writes(
    shop_folder: Path, tmp_path: Path, home: Path
) -> None:
    """The reason for the flag: the same two processes, not following, disagree."""
    db = tmp_path / "events.db"
    a, b = replica(shop_folder, db, shared=False), replica(shop_folder, db, False)
    top = listed(b, "NaN")[0]
    ok(a.post("/v1/events", json={"user_id": "NaN", "item_id": top, "event": "dislike"}))
    assert top in listed(b, "NaN")


@pytest.mark.slow
def test_two_servers_on_one_store(shop_folder: Path, tmp_path: Path) -> None:
    """Two real `llmrec serve --shared-store` processes on one SQLite file."""
    home, db = tmp_path / "home", f"sqlite:///{tmp_path / 'events.db'}"
    key = create_key(Store(db), "write")
    h = {"Authorization": f"Bearer {key}"}
    args = ["--shared-store", "--refresh-every", "0"]
    with (
        serve(shop_folder, db, home, args) as one,
        serve(shop_folder, db, home, args) as two,
    ):
        first = ok(httpx.get(f"{two.url}/v1/recommendations?user_id=7.0&k=5", headers=h))
        top = first["items"][0]["item_id"]
        event = {"user_id": "7.0", "item_id": top, "event": "dislike", "context": CONTEXT}
        ok(httpx.post(f"{one.url}/v1/events", json=event, headers=h))
        again = ok(httpx.get(f"{two.url}/v1/recommendations?user_id=7.0&k=5", headers=h))
        assert top not in [i["item_id"] for i in again["items"]]
        assert httpx.delete(f"{one.url}/v1/users/7.0", headers=h).status_code == 200
        assert httpx.get(f"{two.url}/v1/users/7.0", headers=h).status_code == 404


def test_workers_behind_one_address(shop_folder: Path, tmp_path: Path) -> None:
    """`llmrec serve --workers 2`: two processes accept on one port; an event or a deletion
    sent on one connection holds on every later one, whichever worker takes it."""
    import psutil

    home, db = tmp_path / "home", f"sqlite:///{tmp_path / 'events.db'}"
    h = {"Authorization": f"Bearer {create_key(Store(db), 'write')}"}
    with serve(shop_folder, db, home, ["--workers", "2", "--refresh-every", "0"]) as server:
        workers = [
            p
            for p in psutil.Process(server.process.pid).children(recursive=True)
            if "spawn_main" in " ".join(p.cmdline())
        ]
        assert len(workers) == 2
        url = f"{server.url}/v1/recommendations?user_id=1e3&k=5"  # a fresh connection each
        top = ok(httpx.get(url.replace("1e3", "NaN"), headers=h))["items"][0]["item_id"]
        event = {"user_id": "NaN", "item_id": top, "event": "dislike", "context": CONTEXT}
        ok(httpx.post(f"{server.url}/v1/events", json=event, headers=h))
        for _ in range(8):
            listed = ok(httpx.get(url.replace("1e3", "NaN"), headers=h))["items"]
            assert top not in [i["item_id"] for i in listed]
        assert httpx.delete(f"{server.url}/v1/users/7.0", headers=h).status_code == 200
        for _ in range(8):
            assert httpx.get(f"{server.url}/v1/users/7.0", headers=h).status_code == 404
    assert "Traceback" not in server.log.read_text()
