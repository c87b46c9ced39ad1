"""What the web page stands on, in process: static files, user/item search, history,
retriever names on recommendations, context values, evaluation reports."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from llmrec.data import columns as C
from llmrec.data.splits import full_train
from llmrec.eval.report import TABLE_METRICS
from llmrec.models import get_model_class
from llmrec.models.base import Recommender
from llmrec.service.app import WEB, Service, create_app
from llmrec.service.folder import USERS_FILE
from llmrec.service.keys import create_key
from llmrec.service.store import Store
from llmrec.testing import block_dataset


@pytest.fixture
def model_dir(served_model_dir: Path, tmp_path: Path) -> Path:
    """The served test model plus a users file (block data has no profiles)."""
    folder = tmp_path / "model"
    shutil.copytree(served_model_dir, folder)
    profiles = pd.DataFrame({C.USER_ID: ["u1", "u2"], "age": [31, 47], "occupation": ["a", "b"]})
    profiles.to_parquet(folder / USERS_FILE, index=False)
    return folder


@pytest.fixture
def client(tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setenv("LLMREC_HOME", str(tmp_path / "home"))
    store = Store(f"sqlite:///{tmp_path / 'events.db'}")
    service = Service(
        store, model_dir, reports_dir=tmp_path / "reports", refresh_every=0.0, llm="off"
    )
    client = TestClient(create_app(service), raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {create_key(store, 'write')}"
    return client


def ok(r: object) -> dict:
    assert r.status_code in (200, 202), r.text  # type: ignore[attr-defined]
    return r.json()  # type: ignore[attr-defined]


def test_page_is_served_without_a_key_and_loads_nothing_from_the_network(
    client: TestClient,
) -> None:
    anonymous = TestClient(client.app)
    page = anonymous.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    linked = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert "/static/app.js" in linked and "/static/style.css" in linked
    for path in linked:
        assert not path.startswith(("http:", "https:", "//")), path
        if path.startswith("/static/"):
            assert anonymous.get(path).status_code == 200, path
    for f in WEB.iterdir():  # no CDN, no remote font: the only URL is the SVG namespace
        urls = set(re.findall(r"https?://[^\s\"'`)]+", f.read_text()))
        assert urls <= {"http://www.w3.org/2000/svg"}, (f.name, urls)
    assert "/" not in anonymous.get("/openapi.json").json()["paths"]
    assert anonymous.get("/v1/users").status_code == 401  # the data still needs a key


def test_user_search_profile_and_history_newest_first(client: TestClient) -> None:
    ds = block_dataset()
    counts = ds.interactions[C.USER_ID].value_counts()
    hits = ok(client.get("/v1/users", params={"query": "u1"}))["users"]
    assert hits[0] == {"user_id": "u1", "events": int(counts["u1"])}  # exact match first
    assert {h["user_id"] for h in hits} == {u for u in counts.index if "u1" in u}
    assert len(ok(client.get("/v1/users", params={"limit": 3}))["users"]) == 3

    items = ok(client.get("/v1/recommendations", params={"user_id": "u1", "k": 2}))["items"]
    first, second = items[0]["item_id"], items[1]["item_id"]
    rate = {"event": "rate", "value": 4, "timestamp": 10_000}
    ok(client.post("/v1/events", json={"user_id": "u1", "item_id": first, **rate}))
    dislike = {"event": "dislike", "timestamp": 20_000}
    ok(client.post("/v1/events", json={"user_id": "u1", "item_id": second, **dislike}))
    user = ok(client.get("/v1/users/u1", params={"limit": 5}))
    assert user["profile"] == {"age": 31, "occupation": "a"}
    assert user["events"] == counts["u1"] + 2
    assert [h["event"] for h in user["history"][:2]] == ["dislike", "rate"]
    assert user["history"][1]["value"] == 4 and user["history"][1]["title"] == items[0]["title"]
    stamps = [h["timestamp"] for h in user["history"]]
    assert stamps == sorted(stamps, reverse=True) and len(stamps) == 5

    r = client.get("/v1/users/nobody")
    assert r.status_code == 404 and r.json()["error"]["field"] == "user_id"
    ok(client.delete("/v1/users/u2"))  # gone from search, history and profile
    assert client.get("/v1/users/u2").status_code == 404
    assert "u2" not in [h["user_id"] for h in ok(client.get("/v1/users?query=u2"))["users"]]


def test_item_search_finds_titles_ids_and_new_items(client: TestClient) -> None:
    found = ok(client.get("/v1/items", params={"query": "DRAMA item 1"}))["items"]
    assert {i["item_id"] for i in found} == {"10", "12", "14", "16", "18"}
    assert all(i["genres"] == ["Drama"] and i["events"] > 0 for i in found)
    by_id = ok(client.get("/v1/items", params={"query": "7"}))["items"]
    assert by_id[0]["item_id"] == "7"  # the exact id first
    ok(client.put("/v1/items/film-x", json={"title": "Space Drama", "genres": ["Sci-Fi"],
                                             "year": 2001}))  # fmt: skip
    new = ok(client.get("/v1/items", params={"query": "space"}))["items"]
    assert new == [{"item_id": "film-x", "title": "Space Drama", "genres": ["Sci-Fi"],
                    "year": 2001, "events": 0}]  # fmt: skip
    assert ok(client.get("/v1/items", params={"query": "no such title"}))["items"] == []


def test_recommendations_name_the_retriever_that_proposed_them(
    client: TestClient, model_dir: Path
) -> None:
    model = Recommender.load(model_dir)
    got = ok(client.get("/v1/recommendations", params={"user_id": "u3", "k": 8}))["items"]
    assert {x["source"] for x in got} <= set(model.retrievers_)  # type: ignore[attr-defined]
    (ids, scores), sources = model.recommend_with_sources(["u3"], k=8)
    assert [x["item_id"] for x in got] == ids[0]
    assert [x["source"] for x in got] == sources[0]
    assert model.recommend(["u3"], k=8).item_ids == ids  # the same list either way
    cold = ok(client.get("/v1/recommendations", params={"user_id": "new-visitor"}))["items"]
    assert {x["source"] for x in cold} <= {"popular", "text-neighbours"}


def test_single_stage_models_name_themselves() -> None:
    model = get_model_class("pop")().fit(full_train(block_dataset()))
    (ids, _), sources = model.recommend_with_sources(["u0", "u1"], k=3)
    assert sources == [["pop"] * 3, ["pop"] * 3] and len(ids[0]) == 3


def test_context_values_come_from_recent_events(client: TestClient) -> None:
    first = ok(client.get("/v1/context"))
    assert {k: first[k] for k in C.CONTEXT_COLUMNS} == {
        "device": [],
        "location": [],
        "scenario": [],
    }
    # the page's hints quote this catalogue: a user, the most-chosen title, common genres
    assert first["item_noun"] == "item" and first["examples"]["user"] == "u0"
    assert first["examples"]["title"] and len(first["examples"]["genres"]) == 2
    ok(client.post("/v1/events", json=[
        {"user_id": "u1", "item_id": "3", "event": "view", "context": {"device": "tv"}},
        {"user_id": "u3", "item_id": "5", "event": "view",
         "context": {"device": "mobile", "scenario": "home"}},
    ]))  # fmt: skip
    after = ok(client.get("/v1/context"))
    assert {k: after[k] for k in C.CONTEXT_COLUMNS} == {
        "device": ["mobile", "tv"],
        "location": [],
        "scenario": ["home"],
    }
    # the common genres are counted once per catalogue, again when items arrive
    for n in range(40):
        ok(client.put(f"/v1/items/zy-{n}", json={"title": f"Zydeco {n}", "genres": ["Zydeco"]}))
    assert ok(client.get("/v1/context"))["examples"]["genres"][0] == "Zydeco"


def test_reports_list_results_and_name_broken_files(client: TestClient, tmp_path: Path) -> None:
    empty = ok(client.get("/v1/reports"))
    assert empty["reports"] == [] and empty["metrics"] == list(TABLE_METRICS)
    folder = tmp_path / "reports"
    folder.mkdir()
    run = {"dataset": "blocks", "protocol": "loo", "model": "pop", "params": {"seed": 1},
           "metrics": {"ndcg@10": 0.25, "recall@10": 0.5, "gini@10": float("nan")},
           "valid_ndcg@10": 0.2, "fit_seconds": 0.1, "n_users": 40, "n_items": 20}  # fmt: skip
    cold = {**run, "protocol": "cold-items", "metrics": {"ndcg@10": 0.1}}
    gap = {"groups": {"F": {"users": 20, "ndcg@10": 0.2}, "M": {"users": 20, "ndcg@10": 0.3}},
           "gap": 0.1, "interval": [0.01, 0.2], "p": 0.04}  # fmt: skip
    bands = {"groups": {b: {"users": 20, "ndcg@10": 0.1} for b in ("55+", "<18", "18-24")},
             "gap": 0.0, "interval": [0.0, 0.0], "p": 1.0}  # fmt: skip
    curve = [{"strength": 0.0, "ndcg@10": 0.3, "exposure@10 tail": 0.1},
             {"strength": 0.5, "ndcg@10": 0.2, "exposure@10 tail": float("nan")}, "x"]  # fmt: skip
    grouped = {**run, "model": "ease", "groups": {"gender": gap, "age": bands, "broken": [1]},
               "tradeoffs": {"tail": curve, "mmr": "no"}}  # fmt: skip
    (folder / "blocks-loo.json").write_text(json.dumps([run, grouped]))
    (folder / "blocks-cold-items.json").write_text(json.dumps(cold))
    (folder / "broken.json").write_text("{not json")
    (folder / "other.json").write_text(json.dumps([{"model": "x"}]))
    doc = ok(client.get("/v1/reports"))
    assert [r["name"] for r in doc["reports"]] == ["blocks-loo", "blocks-cold-items"]
    loo = doc["reports"][0]
    assert [m["model"] for m in loo["models"]] == ["pop", "ease"]
    assert loo["models"][0]["metrics"] == {"ndcg@10": 0.25, "recall@10": 0.5}  # NaN dropped
    assert loo["models"][0]["valid_ndcg@10"] == 0.2 and loo["n_users"] == 40
    assert loo["models"][0]["groups"] == {} and loo["models"][1]["groups"]["gender"] == gap
    assert list(loo["models"][1]["groups"]["age"]["groups"]) == ["<18", "18-24", "55+"]
    assert loo["models"][1]["tradeoffs"] == {"tail": [curve[0], {"strength": 0.5, "ndcg@10": 0.2}]}
    problems = {p["file"]: p["message"] for p in doc["problems"]}
    assert set(problems) == {"broken.json", "other.json"}
    assert "not JSON" in problems["broken.json"] and "metrics" in problems["other.json"]
    (folder / "blocks-loo.json").write_text(json.dumps([{**run, "model": "itemknn"}]))
    again = ok(client.get("/v1/reports"))  # re-read when the file changes
    assert [m["model"] for m in again["reports"][0]["models"]] == ["itemknn"]


def test_train_folders_carry_the_profiles_the_page_shows(tmp_path: Path) -> None:
    from dataclasses import replace

    from llmrec.service.folder import read_profiles, write_serving_files

    users = pd.DataFrame({C.USER_ID: ["u0", "u1"], "age": [20, 30], "city": ["x", None]})
    data = full_train(replace(block_dataset(), users=users))
    write_serving_files(tmp_path, data)
    assert read_profiles(tmp_path / USERS_FILE, deleted={"u1"}) == {"u0": {"age": 20, "city": "x"}}
    assert read_profiles(tmp_path / "missing.parquet", set()) == {}  # an older folder: no profiles


def test_page_reads_between_refreshes(tmp_path: Path, model_dir: Path) -> None:
    """Events show on the page at once, before any refresh: counts move as events arrive
    and a user's history reads their own events."""
    from llmrec.service.live import LiveModel

    live = LiveModel(
        model_dir, Store(f"sqlite:///{tmp_path / 'e.db'}"), refresh_every=3600, llm="off"
    )
    event = {C.USER_ID: "newcomer", C.ITEM_ID: "3", C.TIMESTAMP: 5, C.EVENT: "view"}
    live.add_events([{**event, "seq": 1}])
    assert live._dirty  # not refreshed yet
    assert live.find_users("newcomer", 5) == [{"user_id": "newcomer", "events": 1}]
    assert [h[C.ITEM_ID] for h in live.user("newcomer", 5)["history"]] == ["3"]
    assert live.stats()["live_events"] == 1


def test_activity_counts_events_users_lists_and_click_through(
    client: TestClient, model_dir: Path
) -> None:
    log = pd.read_parquet(model_dir / "log.parquet")
    first = ok(client.get("/v1/activity", params={"days": 366}))
    days = first["days"]
    assert sum(d["events"] for d in days) == len(log) and first["impressions"] == []
    last_day = int(log[C.TIMESTAMP].max()) // 86_400
    expected_users = log[log[C.TIMESTAMP] // 86_400 == last_day][C.USER_ID].nunique()
    assert days[-1]["users"] == expected_users
    assert all(sum(d["by_event"].values()) == d["events"] for d in days)
    assert [d["day"] for d in days] == sorted(d["day"] for d in days)  # oldest first, no gaps
    assert len(days) == min(366, last_day - int(log[C.TIMESTAMP].min()) // 86_400 + 1)
    assert list(first["model_versions"].values()) == [1.0]
    # a live event the day after: a new day with one event and one user; a served list counts
    t = (last_day + 1) * 86_400 + 60
    ok(
        client.post(
            "/v1/events",
            json={
                "user_id": "u1",
                "item_id": str(log[C.ITEM_ID].iloc[0]),
                "event": "click",
                "timestamp": t,
            },
        )
    )
    ok(client.get("/v1/recommendations", params={"user_id": "u1", "k": 3}))
    now = ok(client.get("/v1/activity", params={"days": 2}))
    assert now["days"][-1] == {
        "day": now["days"][-1]["day"],
        "events": 1,
        "users": 1,
        "by_event": {"click": 1},
    }
    assert len(now["days"]) == 2 and now["lists_served"]["scored"] >= 1
    assert "u1" not in json.dumps(now)  # counts only, no ids
    assert client.get("/v1/activity", params={"days": 0}).status_code == 422


def test_activity_reads_only_the_days_it_shows(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 days of impressions and clicks; asked for 7, the store is read from the window's
    start on (not whole tables) and the counts equal those computed from everything."""
    from llmrec.service.activity import daily_impressions

    store = client.app.state.service.store  # type: ignore[attr-defined]
    day, rows, clicks = 86_400, [], []
    for d in range(40):
        t = 1_700_000_000 + d * day
        for j in range(3):
            rows.append(
                {"impression_id": f"i{d}", "user_id": "u1", C.ITEM_ID: str(j), "position": j,
                 "rank": j, "propensity": 1.0, "explored": False, "policy": "ranked",
                 "share": 0.0, "pool": 0, "model_version": "v", C.TIMESTAMP: t}
            )  # fmt: skip
        if d % 2:  # a click within the horizon on the first item shown
            clicks.append({C.USER_ID: "u1", C.ITEM_ID: "0", C.EVENT: "click", C.TIMESTAMP: t + 60})
    store.add_impressions(rows)
    ok(client.post("/v1/events", json=clicks))
    every = daily_impressions(store.impressions_since(0), store.events_since(0), 7)
    asked: list[int | None] = []
    real = type(store).impressions_since
    monkeypatch.setattr(
        type(store),
        "impressions_since",
        lambda self, seq=0, since_ts=None: asked.append(since_ts) or real(self, seq, since_ts),
    )
    shown = ok(client.get("/v1/activity", params={"days": 7}))["impressions"]
    assert shown == every and len(shown) == 7
    assert sum(d["clicked"] for d in shown) == 4 and all(d["shown"] == 3 for d in shown)
    assert asked == [((1_700_000_000 + 39 * day) // day - 6) * day]  # 0:00 of the 1st day shown
    assert len(store.impressions_since(0, since_ts=asked[0])) == 21
