"""Replicas on one events store (``llmrec serve --shared-store``, service/follower.py): what one
process is told, every other one applies before its next read — events (once each), items
and deletions — first in process (two services, one SQLite file), then as two real servers."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from llmrec.service.app import Service, create_app
from llmrec.service.keys import create_key
from llmrec.service.store import Store
from llmrec.testing.server import serve


def ok(r: httpx.Response) -> dict:
    assert r.status_code in (200, 202), r.text
    return r.json()


def replica(served_model_dir: Path, db: Path, shared: bool = True) -> TestClient:
    store = Store(f"sqlite:///{db}")
    service = Service(store, served_model_dir, refresh_every=0.0, llm="off", shared_store=shared)
    client = TestClient(create_app(service), raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {create_key(store, 'write')}"
    return client


def listed(client: TestClient, user: str, k: int = 10) -> list[str]:
    r = client.get("/v1/recommendations", params={"user_id": user, "k": k})
    return [i["item_id"] for i in ok(r)["items"]]


def test_what_one_replica_is_told_the_other_applies(
    served_model_dir: Path, tmp_path: Path, home: Path
) -> None:
    db = tmp_path / "events.db"
    a, b = replica(served_model_dir, db), replica(served_model_dir, db)
    top = listed(b, "u0")[0]
    # a dislike told to A: B's next list for the user leaves the item out
    ok(a.post("/v1/events", json={"user_id": "u0", "item_id": top, "event": "dislike"}))
    assert top not in listed(b, "u0")
    # a new user's events told to A: B knows the user, each event once
    events = [{"user_id": "new", "item_id": str(i), "event": "view"} for i in (1, 3, 5)]
    ok(a.post("/v1/events", json=events))
    history = ok(b.get("/v1/users/new"))["history"]
    assert sorted(h["item_id"] for h in history) == ["1", "3", "5"]
    ok(b.post("/v1/events", json={"user_id": "new", "item_id": "7", "event": "view"}))
    assert len(ok(a.get("/v1/users/new"))["history"]) == 4  # and back: A applies B's
    assert len(ok(b.get("/v1/users/new"))["history"]) == 4  # B's own applied once, not twice
    # an item put through A: B takes events on it and finds it similar to others
    item = {"title": "Comedy special", "text": "a comedy", "genres": ["Comedy"]}
    ok(a.put("/v1/items/x1", json=item))
    ok(b.post("/v1/events", json={"user_id": "u1", "item_id": "x1", "event": "view"}))
    assert ok(b.get("/v1/items/x1/similar", params={"k": 3}))["items"]
    # a user deleted through A is gone from B
    assert b.get("/v1/users/u3").status_code == 200
    assert a.delete("/v1/users/u3").status_code == 200
    assert b.get("/v1/users/u3").status_code == 404


def test_without_shared_store_a_process_sees_only_its_own_writes(
    served_model_dir: Path, tmp_path: Path, home: Path
) -> None:
    """The reason for the flag: the same two processes, not following, disagree."""
    db = tmp_path / "events.db"
    a, b = replica(served_model_dir, db, shared=False), replica(served_model_dir, db, False)
    top = listed(b, "u0")[0]
    ok(a.post("/v1/events", json={"user_id": "u0", "item_id": top, "event": "dislike"}))
    assert top in listed(b, "u0")


@pytest.mark.slow
def test_two_servers_on_one_store(served_model_dir: Path, tmp_path: Path) -> None:
    """Two real `llmrec serve --shared-store` processes on one SQLite file."""
    home, db = tmp_path / "home", f"sqlite:///{tmp_path / 'events.db'}"
    key = create_key(Store(db), "write")
    h = {"Authorization": f"Bearer {key}"}
    args = ["--shared-store", "--refresh-every", "0"]
    with (
        serve(served_model_dir, db, home, args) as one,
        serve(served_model_dir, db, home, args) as two,
    ):
        first = ok(httpx.get(f"{two.url}/v1/recommendations?user_id=u2&k=5", headers=h))
        top = first["items"][0]["item_id"]
        event = {"user_id": "u2", "item_id": top, "event": "dislike"}
        ok(httpx.post(f"{one.url}/v1/events", json=event, headers=h))
        again = ok(httpx.get(f"{two.url}/v1/recommendations?user_id=u2&k=5", headers=h))
        assert top not in [i["item_id"] for i in again["items"]]
        assert httpx.delete(f"{one.url}/v1/users/u2", headers=h).status_code == 200
        assert httpx.get(f"{two.url}/v1/users/u2", headers=h).status_code == 404
