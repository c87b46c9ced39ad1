"""The HTTP service in process: auth, limits, errors, real-time effect, items, users, reload."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from llmrec.data import columns as C
from llmrec.service.app import Service, create_app
from llmrec.service.keys import create_key
from llmrec.service.store import Store, with_store
from llmrec.testing import block_dataset


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("LLMREC_HOME", str(tmp_path / "home"))
    return Store(f"sqlite:///{tmp_path / 'events.db'}")


@pytest.fixture
def service(store: Store, served_model_dir: Path) -> Service:
    return Service(store, served_model_dir, refresh_every=0.0, llm="off")


@pytest.fixture
def client(service: Service) -> TestClient:
    return TestClient(create_app(service), raise_server_exceptions=False)


def auth(store: Store, role: str = "admin", rate: float = 0.0) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_key(store, role, rate_limit=rate)}"}


def recs(client: TestClient, headers: dict[str, str], user: str, k: int = 5) -> list[str]:
    r = client.get("/v1/recommendations", params={"user_id": user, "k": k}, headers=headers)
    assert r.status_code == 200, r.text
    return [x["item_id"] for x in r.json()["items"]]


def post(client: TestClient, headers: dict[str, str], body: object) -> dict[str, object]:
    r = client.post("/v1/events", json=body, headers=headers)
    assert r.status_code == 202, r.text
    return r.json()


# --- auth, limits, errors -------------------------------------------------------------------
def test_keys_roles_and_revocation(client: TestClient, store: Store, service: Service) -> None:
    assert client.get("/healthz").status_code == 200  # no key needed
    r = client.get("/v1/recommendations", params={"user_id": "u0"})
    assert r.status_code == 401 and r.json()["error"]["field"] == "Authorization"
    bad = {"Authorization": "Bearer lrk_not-a-key"}
    assert (
        client.get("/v1/recommendations", params={"user_id": "u0"}, headers=bad).status_code == 401
    )
    read = auth(store, "read")
    assert len(recs(client, read, "u0")) == 5
    event = {"user_id": "u0", "item_id": "1", "event": "view"}
    r = client.post("/v1/events", json=event, headers=read)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert client.post("/v1/admin/reload", headers=auth(store, "write")).status_code == 403
    # stored hashed: the secret is nowhere in the table
    secret = read["Authorization"].split()[1]
    assert all(secret not in str(row.values()) for row in store.keys())
    store.revoke_key(store.keys()[0]["id"])
    service._keys.clear()  # a running server re-reads keys within 5 s
    r = client.get("/v1/recommendations", params={"user_id": "u0"}, headers=read)
    assert r.status_code == 401


def test_rate_limit_per_key(client: TestClient, store: Store) -> None:
    slow, other = auth(store, "read", rate=2), auth(store, "read", rate=2)
    codes = [
        client.get("/v1/recommendations", params={"user_id": "u0"}, headers=slow).status_code
        for _ in range(4)
    ]
    assert codes[:2] == [200, 200] and codes[-1] == 429
    r = client.get("/v1/recommendations", params={"user_id": "u0"}, headers=slow)
    assert r.headers["Retry-After"] == "1" and r.json()["error"]["code"] == "rate_limited"
    assert len(recs(client, other, "u0")) == 5  # the limit is per key


def test_limits_and_errors_name_the_field(client: TestClient, store: Store) -> None:
    h = auth(store, "write")
    big = [{"user_id": "u0", "item_id": "1", "event": "view"}] * 40_000
    r = client.post("/v1/events", json=big, headers=h)
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit counts what streams in
        yield b"["
        for _ in range(40):
            yield b'{"user_id": "u0", "item_id": "1", "event": "view"},' * 600
        yield b"{}]"

    json_h = {**h, "Content-Type": "application/json"}
    r = client.post("/v1/events", content=chunked(), headers=json_h)
    assert "content-length" not in r.request.headers
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    many = [{"user_id": "u0", "item_id": "1", "event": "view"}] * 1001
    r = client.post("/v1/events", json=many, headers=h)
    assert r.status_code == 422 and r.json()["error"]["field"] == "body"
    cases = [
        ({"user_id": "u0", "item_id": "1", "event": "poke"}, "body.event"),
        ({"user_id": "u0", "item_id": "1", "event": "rate"}, "body.value"),
        ({"user_id": "u0", "item_id": "1", "event": "view", "colour": 1}, "body.colour"),
        (
            [{"user_id": "u0", "item_id": "1", "event": "view"}, {"user_id": "u0"}],
            "body[1].item_id",
        ),
        ({"user_id": "u0", "item_id": "nope", "event": "view"}, "body.item_id"),
        ({"user_id": "", "item_id": "1", "event": "view"}, "body.user_id"),
    ]
    for body, field in cases:
        r = client.post("/v1/events", json=body, headers=h)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["field"] == field, (body, r.json())
    assert store.count_events() == 0  # nothing half-written
    small = (b'[{"user_id": "u0", "item_id": "1", "event": "view"}]',)
    r = client.post("/v1/events", content=iter(small), headers=json_h)
    assert r.status_code == 202, r.text
    r = client.post(
        "/v1/events", content=b"{bad", headers={**h, "content-type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_json"
    r = client.get("/v1/recommendations", params={"user_id": "u0", "k": 0}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["field"] == "k"
    r = client.get("/v1/items/nope/similar", headers=h)
    assert r.status_code == 404 and r.json()["error"]["field"] == "item_id"
    assert client.get("/v2/nothing", headers=h).json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/items/x", {"title": "A\x00B"}, "body.title"),
        ("/v1/items/x", {"title": "A", "text": "line\x00"}, "body.text"),
        ("/v1/items/x", {"title": "A", "attributes": {"k": "v\x1b[31m"}}, "body.attributes.k"),
        ("/v1/items/a%00b", {"title": "A"}, "item_id"),
    ],
)
def test_control_characters_never_reach_the_store(
    client: TestClient, store: Store, path: str, body: dict[str, object], field: str
) -> None:
    """PostgreSQL refuses NUL in text: the edge answers 422 naming the field (on both stores:
    nothing reaches them), where a NUL used to be a 500."""
    r = client.put(path, json=body, headers=auth(store, "write"))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field, r.json()
    assert store.items_table().empty
    ok = client.put("/v1/items/x", json={"title": "A", "text": "two\nlines\tand a tab"},
                    headers=auth(store, "write"))  # fmt: skip
    assert ok.status_code in (200, 201), ok.text


# --- events ---------------------------------------------------------------------------------
def test_event_ids_make_retries_idempotent(client: TestClient, store: Store) -> None:
    h = auth(store, "write")
    e = {"user_id": "u0", "item_id": "1", "event": "click", "event_id": "abc"}
    assert post(client, h, e) == {"stored": 1, "duplicates": 0}
    assert post(client, h, [e, {**e, "event_id": "def"}]) == {"stored": 1, "duplicates": 1}
    assert post(client, h, [{**e, "event_id": "x"}, {**e, "event_id": "x"}])["stored"] == 1
    assert store.count_events() == 3


def test_dislike_removes_the_item_and_its_near_duplicate(client: TestClient, store: Store) -> None:
    h = auth(store)
    before = recs(client, h, "u0", k=3)
    top = before[0]
    # a near-duplicate of the top item (same text) under another id
    title = client.get(f"/v1/items/{top}/similar", params={"k": 1}, headers=h)
    assert title.status_code == 200
    dup = {"title": f"Drama item {top}", "genres": ["Drama"]}
    assert client.put("/v1/items/dup-of-top", json=dup, headers=h).status_code == 200
    assert "dup-of-top" in [
        x["item_id"]
        for x in client.get(f"/v1/items/{top}/similar", params={"k": 3}, headers=h).json()["items"]
    ]
    post(client, h, {"user_id": "u0", "item_id": top, "event": "dislike"})
    after = recs(client, h, "u0", k=15)
    assert top not in after and "dup-of-top" not in after


def test_like_and_view_change_the_very_next_recommendation(
    client: TestClient, store: Store, service: Service
) -> None:
    h = auth(store)
    before = recs(client, h, "u1", k=5)
    post(client, h, {"user_id": "u1", "item_id": before[0], "event": "view"})
    after = recs(client, h, "u1", k=5)
    assert before[0] not in after and after != before
    # the sequence model's input now ends with that item
    model = service.live.model
    u = model.users_.index(["u1"])
    seq = model.retrievers_["sasrec"]._sequences(u, 5)[0]  # type: ignore[attr-defined]
    assert seq[-1] == model.items_.index([before[0]])[0] + 1


def test_unknown_user_gets_cold_start_then_personal_lists(client: TestClient, store: Store) -> None:
    h = auth(store)
    cold = recs(client, h, "brand-new", k=5)
    assert len(cold) == 5  # never an error
    # two Drama (even) items liked: the list turns to Drama
    post(client, h, [
        {"user_id": "brand-new", "item_id": "0", "event": "like"},
        {"user_id": "brand-new", "item_id": "2", "event": "like"},
    ])  # fmt: skip
    warm = recs(client, h, "brand-new", k=5)
    assert not {"0", "2"} & set(warm)
    assert sum(int(i) % 2 == 0 for i in warm) >= 4


def test_cold_start_follows_the_request_context(client: TestClient, store: Store) -> None:
    h = auth(store)
    # item 19 is what mobile users view; the others do not use mobile
    post(client, h, [
        {"user_id": f"m{n}", "item_id": "19", "event": "view", "context": {"device": "mobile"}}
        for n in range(5)
    ])  # fmt: skip
    r = client.get(
        "/v1/recommendations", params={"user_id": "nobody", "k": 3, "device": "mobile"}, headers=h
    )
    assert r.json()["items"][0]["item_id"] == "19"


# --- items, users, reload ----------------------------------------------------------------------
def test_new_item_is_similar_and_recommendable_at_once(client: TestClient, store: Store) -> None:
    h = auth(store)
    item = {"title": "Comedy item brand new", "text": "A comedy.", "genres": ["Comedy"]}
    r = client.put("/v1/items/fresh", json=item, headers=h)
    assert r.json() == {"item_id": "fresh", "created": True}
    sims = client.get("/v1/items/fresh/similar", params={"k": 5}, headers=h).json()["items"]
    assert sum(int(x["item_id"]) % 2 == 1 for x in sims) >= 4  # comedies are odd items
    assert "fresh" in recs(client, h, "u1", k=25)  # u1 is in the comedy block
    assert client.put("/v1/items/fresh", json=item, headers=h).json()["created"] is False


def test_delete_user_removes_events_and_state_everywhere(
    client: TestClient, store: Store, served_model_dir: Path
) -> None:
    h = auth(store)
    post(client, h, {"user_id": "u2", "item_id": "1", "event": "view"})
    events_before = client.get("/healthz").json()["events"]
    r = client.delete("/v1/users/u2", headers=h)
    assert r.status_code == 200 and r.json()["deleted_events"] == 1
    assert store.events_since(0, user_id="u2").empty
    assert client.get("/healthz").json()["events"] < events_before - 1  # training events too
    cold = recs(client, h, "u2", k=5)
    assert cold == recs(client, h, "someone-new", k=5)
    # after a restart (a new service on the same store) u2 stays gone
    again = TestClient(create_app(Service(store, served_model_dir, llm="off")))
    assert again.get("/healthz").json()["events"] == client.get("/healthz").json()["events"]
    # and `llmrec train` leaves them out too
    ds, last = with_store(block_dataset(), store)
    assert "u2" not in set(ds.interactions[C.USER_ID]) and last == store.last_seq()


def test_deletion_leaves_no_bytes_of_the_user_in_the_sqlite_files(
    client: TestClient, store: Store, served_model_dir: Path, tmp_path: Path
) -> None:
    """After DELETE and a restart, neither the database nor its WAL holds the user's id or a
    byte of their events (a planted location string); the deletion is remembered as a digest."""
    h = auth(store)
    for n in range(20):
        body = {"user_id": "PLANTED-USER-7731", "item_id": str(n % 5 + 1), "event": "view",
                "context": {"location": "PLANTED-PLACE-4417"}}  # fmt: skip
        post(client, h, body)
    post(client, h, {"user_id": "u3", "item_id": "2", "event": "view"})
    files = [tmp_path / "events.db", tmp_path / "events.db-wal"]
    assert any(b"PLANTED-PLACE-4417" in f.read_bytes() for f in files if f.exists())
    assert client.delete("/v1/users/PLANTED-USER-7731", headers=h).json()["deleted_events"] == 20
    store.close()
    reopened = Store(store.url)  # a restart
    assert "PLANTED-USER-7731" in reopened.deleted_users() and reopened.count_events() >= 1
    reopened.close()
    for f in tmp_path.glob("events.db*"):
        raw = f.read_bytes()
        assert b"PLANTED-USER-7731" not in raw and b"PLANTED-PLACE-4417" not in raw, f.name


def test_migration_3_replaces_deleted_ids_by_digests(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from llmrec.service.store import MIGRATIONS, deleted_users, user_digest

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # a store at version 2 that kept raw ids
        from llmrec.service.store import schema_version

        schema_version.create(conn)
        for version, step in MIGRATIONS[:2]:
            step(conn)
            conn.execute(schema_version.insert().values(version=version, applied_at=1))
        conn.execute(deleted_users.insert().values(user_id="gone-user", deleted_at=7))
    engine.dispose()
    store = Store(url)
    assert "gone-user" in store.deleted_users()
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(deleted_users)).all() == [(user_digest("gone-user"), 7)]
    store.close()


def test_train_takes_stored_events_and_items(store: Store) -> None:
    store.add_events([{"event_id": None, C.USER_ID: "new", C.ITEM_ID: "3", C.EVENT: "view",
                       C.VALUE: None, C.TIMESTAMP: 10**9, C.DEVICE: "tv", C.LOCATION: None,
                       C.SCENARIO: None}])  # fmt: skip
    store.put_item({C.ITEM_ID: "z", C.TITLE: "Zed", "text": "new", C.GENRES: ["Drama"]})
    ds, last = with_store(block_dataset(), store)
    row = ds.interactions[ds.interactions[C.USER_ID] == "new"]
    assert len(row) == 1 and row[C.DEVICE].iloc[0] == "tv" and last == 1
    assert "z" in set(ds.items[C.ITEM_ID])


def test_reload_swaps_without_a_failed_request(
    client: TestClient, store: Store, service: Service
) -> None:
    h = auth(store)
    post(client, h, {"user_id": "u3", "item_id": "1", "event": "view"})
    codes: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            codes.append(
                client.get("/v1/recommendations", params={"user_id": "u3"}, headers=h).status_code
            )

    t = threading.Thread(target=hammer)
    t.start()
    try:
        r = client.post("/v1/admin/reload", headers=h)
    finally:
        stop.set()
        t.join()
    assert r.status_code == 200 and r.json()["model_version"]
    assert codes and set(codes) == {200}
    assert "1" not in recs(client, h, "u3", k=20)  # stored events survive the swap
    bad = client.post("/v1/admin/reload", json={"model_dir": "/no/such/dir"}, headers=h)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "model_dir"


def test_logs_carry_no_user_ids(
    client: TestClient, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    h = auth(store)
    with caplog.at_level("INFO", logger="llmrec.service"):
        recs(client, h, "secret-user-42")
        post(client, h, {"user_id": "secret-user-42", "item_id": "1", "event": "view"})
    text = caplog.text
    assert "/v1/recommendations" in text and "secret-user-42" not in text


def test_a_server_error_logs_neither_message_nor_data(
    service: Service,
    store: Store,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug whose message quotes the request (as a database driver quotes the failing row):
    the client gets a plain 500, the log the exception's type and place, nothing it carried;
    and the handled error does not reach the server again (uvicorn would log it in full)."""

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"row (PLANTED-ITEM-991, 'Planted Title') failed: {args}")

    monkeypatch.setattr(service.live, "recommend", broken)
    client = TestClient(create_app(service))  # raises what reaches the server
    with caplog.at_level("INFO"):
        r = client.get("/v1/recommendations", params={"user_id": "PLANTED-USER-3"},
                       headers=auth(store))  # fmt: skip
    assert r.status_code == 500 and r.json()["error"] == {"code": "internal",
                                                          "message": "internal error"}  # fmt: skip
    # the server's log: every logger but the test client's own (httpx logs the URL it sends)
    text = "\n".join(x.getMessage() for x in caplog.records if not x.name.startswith("httpx"))
    assert "RuntimeError" in text and "test_service.py" in text
    for planted in ("PLANTED-ITEM-991", "Planted Title", "PLANTED-USER-3"):
        assert planted not in text and planted not in r.text


def test_past_the_in_flight_limit_requests_get_503_at_once(
    service: Service, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one request held inside the model, the next gets 503 + Retry-After without
    waiting; health checks still answer; the held one completes once released."""
    entered, release = threading.Event(), threading.Event()
    original = service.live.recommend

    def held(*args: object, **kwargs: object) -> object:
        entered.set()
        release.wait(60)
        return original(*args, **kwargs)

    monkeypatch.setattr(service.live, "recommend", held)
    client = TestClient(create_app(service, max_in_flight=1))
    h = auth(store)
    first: list[int] = []
    worker = threading.Thread(
        target=lambda: first.append(
            client.get("/v1/recommendations", params={"user_id": "u1"}, headers=h).status_code
        )
    )
    worker.start()
    try:
        assert entered.wait(60)
        r = client.get("/v1/recommendations", params={"user_id": "u2"}, headers=h)
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        assert r.json()["error"]["code"] == "overloaded"
        assert client.get("/healthz").status_code == 200
    finally:
        release.set()
        worker.join(60)
    assert first == [200]
    assert client.get("/v1/recommendations", params={"user_id": "u2"}, headers=h).status_code == 200


def test_explanations_name_an_item_of_the_history(client: TestClient, store: Store) -> None:
    h = auth(store)
    r = client.get(
        "/v1/recommendations", params={"user_id": "u0", "k": 3, "explain": True}, headers=h
    )
    items = pd.DataFrame(r.json()["items"])
    history = set(
        block_dataset()
        .interactions.query("user_id == 'u0'")[C.ITEM_ID]
        .map(lambda i: f"Drama item {i}" if int(i) % 2 == 0 else f"Comedy item {i}")
    )
    assert all(any(t in e for t in history) for e in items["explanation"])
    assert np.all(np.diff(items["score"]) <= 0)


def test_metrics_and_offline_docs(client: TestClient, store: Store) -> None:
    """/metrics (admin key) counts requests by route template, lists by cache or scoring and
    events stored, with no user id anywhere; /docs needs no CDN (its assets are served here)."""
    h = auth(store)
    recs(client, h, "secret-user-9")
    recs(client, h, "secret-user-9")  # the second from the cache
    post(client, h, {"user_id": "secret-user-9", "item_id": "1", "event": "view"})
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=auth(store, "read")).status_code == 403
    text = client.get("/metrics", headers=h).text
    assert (
        'llmrec_requests_total{method="GET",route="/v1/recommendations",status="200"} 2.0' in text
    )
    assert 'llmrec_recommendation_lists_total{source="cache"} 1.0' in text
    assert "llmrec_events_stored_total 1.0" in text and "llmrec_model_info{version=" in text
    assert "secret-user-9" not in text
    page = client.get("/docs").text
    assert "/docs-assets/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    js = client.get("/docs-assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
