"""Model versions: the folder layout `llmrec train` writes, choosing the served version,
rollback, and A/B splits with their impressions and report."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from llmrec import versions
from llmrec.cli import app as cli
from llmrec.data import columns as C
from llmrec.data import dataset as dataset_store
from llmrec.data.splits import full_train
from llmrec.errors import ConfigError, DataError
from llmrec.models import EASE, Pop, Recommender
from llmrec.online.ab import compare
from llmrec.service.app import Service, create_app
from llmrec.service.folder import save_for_serving
from llmrec.service.keys import create_key
from llmrec.service.live import LiveModel
from llmrec.service.store import Store
from llmrec.testing.fixtures import shop_dataset

runner = CliRunner()


@pytest.fixture(scope="module")
def home_of_two(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v1 = EASE, v2 = popularity, on the shop data (custom events, repeats, context columns,
    numeric-looking ids): two versions whose lists differ."""
    data = full_train(shop_dataset())
    home = tmp_path_factory.mktemp("versions") / "shop-model"
    for model in (EASE(reg=50.0), Pop()):
        fitted = model.fit(data)
        info = {"dataset": "shop", "model": fitted.name, "store_seq": 0}
        versions.publish(home, lambda f, m=fitted, i=info: save_for_serving(m, data, f, i))
    return home


def _copy(home: Path, tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(home, tmp_path / home.name)
    return tmp_path / home.name


def _client(home: Path, tmp_path: Path) -> tuple[Service, TestClient, dict[str, str], Store]:
    store = Store(f"sqlite:///{tmp_path / 'events.db'}")
    service = Service(store, home, refresh_every=0.0, llm="off")
    client = TestClient(create_app(service), raise_server_exceptions=False)
    return service, client, {"Authorization": f"Bearer {create_key(store, 'admin')}"}, store


def _list(client: TestClient, h: dict[str, str], user: str) -> dict[str, Any]:
    r = client.get("/v1/recommendations", params={"user_id": user, "k": 5}, headers=h)
    assert r.status_code == 200, r.text
    return r.json()


# --- the layout ----------------------------------------------------------------------------
def test_publish_names_versions_in_order_and_moves_current(home_of_two: Path) -> None:
    assert versions.names(home_of_two) == ["v1", "v2"]
    assert versions.current(home_of_two) == "v2"
    assert versions.resolve(home_of_two) == home_of_two / "versions" / "v2"
    assert Recommender.load(home_of_two).name == "pop"  # the current version loads
    assert Recommender.load(versions.resolve(home_of_two, "v1")).name == "ease"
    assert versions.previous(home_of_two, "v2") == "v1"
    assert versions.previous(home_of_two, "v1") is None
    rows = versions.describe(home_of_two)
    assert [(r["version"], r["current"], r["model"]) for r in rows] == [
        ("v1", False, "ease"),
        ("v2", True, "pop"),
    ]
    assert not [p for p in (home_of_two / "versions").iterdir() if p.name.startswith(".")]


def test_a_candidate_is_written_without_becoming_current(home_of_two: Path, tmp_path: Path) -> None:
    home = _copy(home_of_two, tmp_path)
    model = Recommender.load(versions.resolve(home, "v1"))
    name = versions.publish(home, lambda f: model.save(f), make_current=False)
    assert name == "v3" and versions.current(home) == "v2"
    versions.set_current(home, "v3")
    assert versions.current(home) == "v3" and (home / "CURRENT").read_text() == "v3\n"


def test_unknown_versions_and_plain_folders_are_clear_errors(
    home_of_two: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"no version 'v9' \(have: v1, v2\)"):
        versions.resolve(home_of_two, "v9")
    with pytest.raises(ConfigError, match="no version"):
        versions.set_current(home_of_two, "v9")
    plain = versions.resolve(home_of_two, "v1")
    with pytest.raises(ConfigError, match="not a folder of model versions"):
        versions.resolve(plain, "v1")
    assert versions.resolve(plain) == plain  # a plain folder is itself
    with pytest.raises(ConfigError, match="too long"):  # a client's model_dir: a 422, not a 500
        versions.resolve(tmp_path / ("0" * 5000), "v1")
    (tmp_path / "empty" / "versions").mkdir(parents=True)
    with pytest.raises(ConfigError, match="no model versions"):
        versions.resolve(tmp_path / "empty")


def test_a_plain_folder_becomes_v1_of_a_home(home_of_two: Path, tmp_path: Path) -> None:
    model = Recommender.load(versions.resolve(home_of_two, "v1"))
    plain = tmp_path / "old-style"
    model.save(plain)  # what `llmrec train` wrote before versions
    name = versions.publish(plain, lambda f: model.save(f))
    assert name == "v2" and versions.names(plain) == ["v1", "v2"]
    assert (plain / "versions" / "v1" / "manifest.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old-style"]  # nothing left aside


def test_prune_keeps_the_newest_and_always_the_current(home_of_two: Path, tmp_path: Path) -> None:
    home = _copy(home_of_two, tmp_path)
    model = Recommender.load(versions.resolve(home, "v1"))
    versions.set_current(home, "v1")
    for _ in range(3):
        versions.publish(home, lambda f: model.save(f), make_current=False, keep=2)
    assert versions.names(home) == ["v1", "v4", "v5"]  # v1 is current: kept
    versions.set_current(home, "v5")
    assert versions.prune(home, 2) == ["v1"]


def test_two_trainings_at_once_each_claim_their_own_name(
    home_of_two: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _copy(home_of_two, tmp_path)
    model = Recommender.load(versions.resolve(home, "v1"))
    real = versions.names
    calls = {"n": 0}

    def stale(h: Path) -> list[str]:  # the first look misses a version another run just wrote
        calls["n"] += 1
        have = real(h)
        return have[:-1] if calls["n"] == 1 else have

    versions.publish(home, lambda f: model.save(f), make_current=False)  # v3 by "the other"
    monkeypatch.setattr(versions, "names", stale)
    assert versions.publish(home, lambda f: model.save(f)) == "v4"
    monkeypatch.undo()
    assert versions.names(home) == ["v1", "v2", "v3", "v4"]


def test_a_failed_write_leaves_no_version(home_of_two: Path, tmp_path: Path) -> None:
    home = _copy(home_of_two, tmp_path)

    def broken(folder: Path) -> None:
        folder.mkdir()
        (folder / "manifest.json").write_text("{}")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        versions.publish(home, broken)
    assert versions.names(home) == ["v1", "v2"] and versions.current(home) == "v2"
    assert sorted(p.name for p in (home / "versions").iterdir()) == ["v1", "v2"]


# --- the CLI -------------------------------------------------------------------------------
def test_train_writes_versions_and_models_chooses_the_served_one(
    home: Path, tmp_path: Path
) -> None:
    dataset_store.save(shop_dataset(), home / "datasets")
    out = tmp_path / "m"
    base = ["train", "--dataset", "shop", "--model", "pop", "--no-tune", "--out", str(out)]
    for extra in ([], [], ["--candidate"]):
        res = runner.invoke(cli, [*base, *extra])
        assert res.exit_code == 0, res.output
    assert "version v3, candidate" in res.output
    assert versions.names(out) == ["v1", "v2", "v3"] and versions.current(out) == "v2"
    info = json.loads((out / "versions" / "v3" / "training.json").read_text())
    assert info["dataset"] == "shop" and info["total_seconds"] > 0
    listed = runner.invoke(cli, ["models", "list", "--model", str(out)])
    assert listed.exit_code == 0, listed.output
    lines = [line for line in listed.output.splitlines() if "│ v" in line]
    assert len(lines) == 3 and "*" in lines[1] and "*" not in lines[0] + lines[2]
    listed = json.loads(
        runner.invoke(cli, ["models", "list", "--model", str(out), "--json"]).output
    )
    assert [(v["version"], v["current"]) for v in listed["versions"]][1] == ("v2", True)
    assert runner.invoke(cli, ["models", "use", "v1", "--model", str(out)]).exit_code == 0
    assert versions.current(out) == "v1"
    bad = runner.invoke(cli, ["models", "use", "v7", "--model", str(out)])
    assert isinstance(bad.exception, ConfigError) and "no version 'v7'" in str(bad.exception)
    res = runner.invoke(cli, [*base, "--keep", "2"])
    assert res.exit_code == 0, res.output
    assert versions.names(out) == ["v3", "v4"]  # v1 was current until v4 took over


# --- the service ---------------------------------------------------------------------------
def test_reload_a_named_version_and_roll_back(home_of_two: Path, tmp_path: Path) -> None:
    home = _copy(home_of_two, tmp_path)
    service, client, h, store = _client(home, tmp_path)
    v1 = LiveModel(versions.resolve(home, "v1"), store, refresh_every=0.0, llm="off")
    user = str(v1.model.users_.ids[3])
    v2_list = _list(client, h, user)
    assert v2_list["model_version"] == "shop-model/v2"
    listed = client.get("/v1/admin/versions", headers=h).json()
    assert listed["served"] == "shop-model/v2" and listed["split"] is None
    assert [(r["version"], r["current"]) for r in listed["versions"]] == [
        ("v1", False),
        ("v2", True),
    ]
    r = client.post("/v1/admin/rollback", headers=h)
    assert r.status_code == 200 and r.json() == {"model_version": "shop-model/v1"}
    after = _list(client, h, user)
    assert [x["item_id"] for x in after["items"]] == [x.item_id for x in v1.recommend(user, 5)]
    assert after["items"] != v2_list["items"] and versions.current(home) == "v1"
    r = client.post("/v1/admin/rollback", headers=h)  # nothing before v1
    assert r.status_code == 409 and "no version before v1" in r.json()["error"]["message"]
    r = client.post("/v1/admin/reload", json={"version": "v2"}, headers=h)
    assert r.json() == {"model_version": "shop-model/v2"} and versions.current(home) == "v2"
    assert _list(client, h, user)["items"] == v2_list["items"]
    r = client.post("/v1/admin/reload", json={"version": "v9"}, headers=h)
    assert r.status_code == 404 and r.json()["error"]["field"] == "version"
    r = client.post("/v1/admin/reload", json={"version": "../x"}, headers=h)
    assert r.status_code == 422
    long = {"model_dir": "0" * 4000, "version": "v1"}  # schemathesis found a 500 here
    r = client.post("/v1/admin/reload", json=long, headers=h)
    assert r.status_code == 422 and r.json()["error"]["field"] == "model_dir"
    reader = {"Authorization": f"Bearer {create_key(store, 'read')}"}
    assert client.post("/v1/admin/rollback", headers=reader).status_code == 403


def test_a_plain_folder_cannot_roll_back(home_of_two: Path, tmp_path: Path) -> None:
    _, client, h, _ = _client(versions.resolve(home_of_two, "v1"), tmp_path)
    r = client.post("/v1/admin/rollback", headers=h)
    assert r.status_code == 409 and "single model folder" in r.json()["error"]["message"]
    assert client.get("/v1/admin/versions", headers=h).json()["versions"] == []


def test_an_ab_split_is_stable_per_user_and_logs_both_variants(
    home_of_two: Path, tmp_path: Path
) -> None:
    home = _copy(home_of_two, tmp_path)
    versions.set_current(home, "v1")
    service, client, h, store = _client(home, tmp_path)
    assert _list(client, h, "101").get("impression_id") is None  # no split: nothing logged
    r = client.put("/v1/admin/ab", json={"version": "v2", "share": 0.5}, headers=h)
    assert r.status_code == 200 and r.json() == {"model_version": "shop-model/v2", "share": 0.5}
    users = [str(u) for u in service.live.model.users_.ids[:40]]
    arm = {u: _list(client, h, u)["model_version"] for u in users}
    assert set(arm.values()) == {"shop-model/v1", "shop-model/v2"}
    for u in users[:10]:  # stable: the same arm on every request
        assert _list(client, h, u)["model_version"] == arm[u]
    logged = store.impressions_since(0)
    assert set(logged["model_version"]) == {"shop-model/v1", "shop-model/v2"}
    assert (logged.groupby(C.USER_ID)["model_version"].nunique() == 1).all()
    assert (logged["policy"] == "ranked").all() and (logged["propensity"] == 1.0).all()
    metrics = client.get("/metrics", headers=h).text
    shares = {
        s.labels["version"]: s.value
        for f in text_string_to_metric_families(metrics)
        if f.name == "llmrec_model_info"
        for s in f.samples
    }
    assert shares == {"shop-model/v1": 0.5, "shop-model/v2": 0.5}
    # an event reaches both versions: a user in B acts and B's next list reflects it
    b_user = next(u for u in users if arm[u] == "shop-model/v2")
    shown = _list(client, h, b_user)["items"][0]["item_id"]
    event = {"user_id": b_user, "item_id": shown, "event": "purchase"}
    assert client.post("/v1/events", json=event, headers=h).status_code == 202
    assert shown not in [x["item_id"] for x in _list(client, h, b_user)["items"]]
    shown_days = client.get("/v1/activity", headers=h).json()["impressions"]
    assert (
        sum(d["lists"] for d in shown_days) == store.impressions_since(0)["impression_id"].nunique()
    )
    assert sum(d["clicked"] for d in shown_days) >= 1  # the purchase of a shown item
    # the report compares the arms from these impressions and events
    arms = compare(store.impressions_since(0), store.events_since(0), control="shop-model/v1")
    assert [a.version for a in arms] == ["shop-model/v1", "shop-model/v2"]
    assert arms[1].clicks >= 1 and arms[1].p_value is not None
    r = client.put("/v1/admin/ab", json={"version": "v9", "share": 0.5}, headers=h)
    assert r.status_code == 404 and "no version 'v9'" in r.json()["error"]["message"]
    r = client.put("/v1/admin/ab", json={"version": "v2", "share": 1.5}, headers=h)
    assert r.status_code == 422
    assert client.delete("/v1/admin/ab", headers=h).status_code == 204
    assert {_list(client, h, u)["model_version"] for u in users} == {"shop-model/v1"}
    # deleting a user deletes what was logged about them, in both arms
    assert client.delete(f"/v1/users/{b_user}", headers=h).status_code == 200
    assert b_user not in set(store.impressions_since(0)[C.USER_ID])


def _replica(home: Path, db: Path) -> tuple[Service, TestClient, dict[str, str]]:
    store = Store(f"sqlite:///{db}")
    service = Service(store, home, refresh_every=0.0, llm="off", shared_store=True)
    client = TestClient(create_app(service), raise_server_exceptions=False)
    return service, client, {"Authorization": f"Bearer {create_key(store, 'admin')}"}


def _caught_up(service: Service, client: TestClient, h: dict[str, str]) -> dict[str, Any]:
    """A request makes the replica look at the store; then its background load is awaited
    (joined, not timed)."""
    listed = client.get("/v1/admin/versions", headers=h).json()
    assert service.follower is not None
    service.follower.wait(timeout=120)
    return client.get("/v1/admin/versions", headers=h).json() if listed else listed


def test_admin_changes_reach_every_replica(home_of_two: Path, tmp_path: Path) -> None:
    """Rollback, A/B and reload told to one process of a shared store: the others serve the
    same (the same arm for each user), and a replica started later starts there too."""
    home, db = _copy(home_of_two, tmp_path), tmp_path / "events.db"
    a, client_a, ha = _replica(home, db)
    b, client_b, hb = _replica(home, db)
    user = str(a.live.model.users_.ids[3])
    assert client_a.post("/v1/admin/rollback", headers=ha).json() == {
        "model_version": "shop-model/v1"
    }
    assert _caught_up(b, client_b, hb)["served"] == "shop-model/v1"
    assert _list(client_b, hb, user)["items"] == _list(client_a, ha, user)["items"]
    r = client_a.put("/v1/admin/ab", json={"version": "v2", "share": 0.5}, headers=ha)
    assert r.status_code == 200
    split = {"model_version": "shop-model/v2", "share": 0.5}
    assert _caught_up(b, client_b, hb)["split"] == split
    users = [str(u) for u in a.live.model.users_.ids[:30]]
    arms_a = [_list(client_a, ha, u)["model_version"] for u in users]
    assert [_list(client_b, hb, u)["model_version"] for u in users] == arms_a
    assert len(set(arms_a)) == 2
    c, client_c, hc = _replica(home, db)  # started after the changes: starts where they are
    assert client_c.get("/v1/admin/versions", headers=hc).json()["split"] == split
    assert c.live.folder.name == "v1"
    assert client_b.delete("/v1/admin/ab", headers=hb).status_code == 204  # back through B
    assert _caught_up(a, client_a, ha)["split"] is None
    assert _caught_up(c, client_c, hc)["split"] is None
    loads: list[str] = []
    real_reload = c.reload
    c.reload = lambda *args, **kw: loads.append("x") or real_reload(*args, **kw)  # type: ignore[method-assign]
    assert client_a.post("/v1/admin/reload", json={"version": "v2"}, headers=ha).status_code == 200
    for service, client, h in ((b, client_b, hb), (c, client_c, hc)):
        assert _caught_up(service, client, h)["served"] == "shop-model/v2"
    assert loads == ["x"]  # one load per change, not one per request
    assert _list(client_c, hc, user)["items"] == _list(client_a, ha, user)["items"]
    assert a.follower is not None and a.follower.state_rev == c.follower.state_rev  # type: ignore[union-attr]


def test_ab_refuses_a_version_of_another_dataset(home_of_two: Path, tmp_path: Path) -> None:
    home = _copy(home_of_two, tmp_path)
    info = home / "versions" / "v2" / "training.json"
    info.write_text(json.dumps({**json.loads(info.read_text()), "dataset": "other"}))
    versions.set_current(home, "v1")
    _, client, h, _ = _client(home, tmp_path)
    r = client.put("/v1/admin/ab", json={"version": "v2", "share": 0.2}, headers=h)
    assert r.status_code == 409 and "same catalogue" in r.json()["error"]["message"]


# --- the report ----------------------------------------------------------------------------
def _logged(ctr: dict[str, float], users: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Impressions of 5 items per list, 4 lists per user, users split between the versions,
    and clicks drawn with each version's click probability."""
    rng = np.random.default_rng(seed)
    imp, ev = [], []
    for u in range(users):
        version = list(ctr)[u % len(ctr)]
        for lst in range(4):
            for _ in range(5):
                item = f"i{rng.integers(100)}"
                t = 1_000_000 + 10_000 * lst
                imp.append((f"{u}-{lst}", str(u), item, version, t))
                if rng.random() < ctr[version]:
                    ev.append((str(u), item, t + 60, "click"))
    impressions = pd.DataFrame(
        imp, columns=["impression_id", C.USER_ID, C.ITEM_ID, "model_version", C.TIMESTAMP]
    )
    impressions["seq"] = np.arange(1, len(impressions) + 1)
    events = pd.DataFrame(ev, columns=[C.USER_ID, C.ITEM_ID, C.TIMESTAMP, C.EVENT])
    return impressions, events


def test_the_report_finds_a_real_difference_and_not_a_false_one() -> None:
    imp, ev = _logged({"a/v1": 0.05, "a/v2": 0.10}, users=600, seed=0)
    control, treated = compare(imp, ev, control="a/v1")
    assert control.lift is None and treated.version == "a/v2"
    assert 0.04 < control.ctr < 0.065 and 0.085 < treated.ctr < 0.12
    assert control.low < control.ctr < control.high
    assert treated.p_value < 0.01 and treated.diff_low > 0 and treated.lift > 0.4
    same_imp, same_ev = _logged({"a/v1": 0.08, "a/v2": 0.08}, users=600, seed=1)
    _, other = compare(same_imp, same_ev, control="a/v1")
    assert other.p_value > 0.05 and other.diff_low < 0 < other.diff_high
    # the default control: the version with the most shown items
    fewer = imp[~((imp["model_version"] == "a/v2") & (imp[C.USER_ID].astype(int) % 4 == 1))]
    assert compare(fewer, ev)[0].version == "a/v1"
    with pytest.raises(DataError, match="no impressions of that version"):
        compare(imp, ev, control="a/v9")
    with pytest.raises(DataError, match="no impressions logged"):
        compare(imp.iloc[:0], ev)


def test_llmrec_ab_prints_the_report(tmp_path: Path, home: Path) -> None:
    db = tmp_path / "ab.db"
    store = Store(f"sqlite:///{db}")
    imp, ev = _logged({"a/v1": 0.05, "a/v2": 0.10}, users=200, seed=2)
    rows = imp.drop(columns="seq").assign(
        position=0, rank=0, propensity=1.0, explored=False, policy="ranked", share=0.0, pool=0
    )
    store.add_impressions(rows.to_dict("records"))
    store.add_events([{**r, C.VALUE: None} for r in ev.to_dict("records")])
    store.close()
    res = runner.invoke(cli, ["ab", "--db", f"sqlite:///{db}"])
    assert res.exit_code == 0, res.output
    assert "a/v1 (control)" in res.output and "a/v2" in res.output and "%" in res.output
    doc = json.loads(runner.invoke(cli, ["ab", "--db", f"sqlite:///{db}", "--json"]).output)
    assert [a["version"] for a in doc["arms"]] == ["a/v1", "a/v2"]
    assert doc["arms"][1]["p_value"] < 0.05 and doc["arms"][0]["lift"] is None
    assert os.path.getsize(db) > 0
