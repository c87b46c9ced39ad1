"""The exploring service: slates, logged impressions and propensities, deletion, and an
off-policy estimate of the ranker's value from the exploration logs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from llmrec.data import columns as C
from llmrec.online.feedback import impression_rows, rewards, share_values
from llmrec.online.policies import EpsilonGreedySlate
from llmrec.service.app import Service, create_app
from llmrec.service.keys import create_key
from llmrec.service.live import LiveModel
from llmrec.service.store import Store


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("LLMREC_HOME", str(tmp_path / "home"))
    return Store(f"sqlite:///{tmp_path / 'events.db'}")


def get(client: TestClient, headers: dict[str, str], user: str, k: int = 5) -> dict:  # type: ignore[type-arg]
    r = client.get("/v1/recommendations", params={"user_id": user, "k": k}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_share_zero_serves_the_ranker_and_logs_nothing(
    store: Store, served_model_dir: Path
) -> None:
    plain = LiveModel(served_model_dir, store, refresh_every=0.0, llm="off")
    zero = LiveModel(served_model_dir, store, refresh_every=0.0, llm="off", explore=0.0)
    assert zero.explorer is None
    for user in ("u0", "u7", "new-visitor"):
        assert zero.recommend(user, 5) == plain.recommend(user, 5)
    client = TestClient(create_app(Service(store, served_model_dir, refresh_every=0.0, llm="off")))
    body = get(client, {"Authorization": f"Bearer {create_key(store, 'read')}"}, "u0")
    assert "impression_id" not in body and "propensity" not in body["items"][0]
    assert store.impressions_since(0).empty


def test_exploring_service_logs_every_shown_item_with_its_propensity(
    store: Store, served_model_dir: Path
) -> None:
    service = Service(
        store, served_model_dir, refresh_every=0.0, llm="off", explore=0.5, explore_pool=6, seed=3
    )
    client = TestClient(create_app(service), raise_server_exceptions=False)
    h = {"Authorization": f"Bearer {create_key(store, 'admin')}"}
    ranker = LiveModel(served_model_dir, store, refresh_every=0.0, llm="off").recommend("u0", 11)
    policy = EpsilonGreedySlate(0.5, 6)
    dist = policy.distribution(np.arange(11), 5)  # slots x ranks, as the README documents
    np.testing.assert_allclose(dist.sum(axis=1), 1.0)
    seen_explored = False
    for _ in range(20):
        body = get(client, h, "u0")
        logged = store.impressions_since(0)
        rows = logged[logged["impression_id"] == body["impression_id"]]
        assert rows["position"].tolist() == [0, 1, 2, 3, 4]
        assert rows[C.ITEM_ID].tolist() == [x["item_id"] for x in body["items"]]
        assert [x["propensity"] for x in body["items"]] == rows["propensity"].tolist()
        for slot, (rank, item, p, explored) in enumerate(
            zip(rows["rank"], rows[C.ITEM_ID], rows["propensity"], rows["explored"], strict=True)
        ):
            assert ranker[rank].item_id == item  # the rank logged is the item's rank
            assert p == pytest.approx(dist[slot, rank])
            assert explored == (rank >= 5) and (explored or rank == slot)
            seen_explored |= bool(explored)
    assert seen_explored
    # deleting the user deletes what was logged about them
    assert client.delete("/v1/users/u0", headers=h).status_code in (200, 202, 204)
    assert store.impressions_since(0).empty


def test_rewards_are_actions_within_the_horizon() -> None:
    imp = pd.DataFrame(
        {
            "seq": [1, 2, 3],
            C.USER_ID: ["a", "a", "b"],
            C.ITEM_ID: ["x", "y", "x"],
            C.TIMESTAMP: [100, 100, 100],
        }
    )
    events = pd.DataFrame(
        {
            C.USER_ID: ["a", "a", "b"],
            C.ITEM_ID: ["x", "y", "x"],
            C.EVENT: ["click", "view", "like"],
            C.TIMESTAMP: [150, 120, 5000],
        }
    )
    assert rewards(imp, events, horizon=3600).tolist() == [1.0, 0.0, 0.0]  # a view, too late


def test_the_rankers_value_is_estimated_from_exploration_logs(
    store: Store, served_model_dir: Path
) -> None:
    """Users click with a known probability per item; the service explores 30% of slots.
    From its logs, the estimated reward per shown item of share 0 (the ranker alone) must
    match the ranker's true value, and the logging share's estimate its own value."""
    explorer = LiveModel(
        served_model_dir, store, refresh_every=0.0, llm="off", explore=0.3, explore_pool=8, seed=0
    )
    ranker = LiveModel(served_model_dir, store, refresh_every=0.0, llm="off")
    users = [f"u{i}" for i in range(40)]
    click_p = {str(i): 0.05 + 0.9 * ((i * 7) % 20) / 20 for i in range(20)}  # item -> P(click)
    rng = np.random.default_rng(1)
    rows, acts = [], []
    for n in range(3000):
        user = users[n % len(users)]
        shown = explorer.recommend(user, 4)
        batch = impression_rows(f"i{n}", user, shown, explorer.explorer, "v")  # type: ignore[arg-type]
        for r in batch:
            r[C.TIMESTAMP] = n * 10_000  # requests an hour+ apart: clicks stay with theirs
            if rng.random() < click_p[r[C.ITEM_ID]]:
                acts.append(
                    {
                        C.USER_ID: user,
                        C.ITEM_ID: r[C.ITEM_ID],
                        C.EVENT: "click",
                        C.TIMESTAMP: n * 10_000,
                    }
                )
        rows += batch
    imp = pd.DataFrame(rows).assign(seq=np.arange(1, len(rows) + 1))
    values = share_values(imp, pd.DataFrame(acts), [0.0, 0.3])
    truth = np.mean([click_p[r.item_id] for u in users for r in ranker.recommend(u, 4)])
    observed = rewards(imp, pd.DataFrame(acts)).mean()  # the logging policy, on-policy
    for est in values[0.0].values():
        assert est.covers(truth) and abs(est.value - truth) < 0.03, (est, truth)
    assert values[0.3]["ips"].value == pytest.approx(observed, abs=0.02)
    assert values[0.3]["snips"].value == pytest.approx(observed, abs=1e-9)  # weights all 1


def test_llmrec_ope_reads_what_the_service_logged(
    store: Store, served_model_dir: Path, tmp_path: Path
) -> None:
    import subprocess
    import sys

    service = Service(
        store, served_model_dir, refresh_every=0.0, llm="off", explore=0.2, explore_pool=6, seed=0
    )
    client = TestClient(create_app(service))
    h = {"Authorization": f"Bearer {create_key(store, 'write')}"}
    for n in range(30):
        user = f"u{n % 10}"
        shown = get(client, h, user)["items"]
        event = {"user_id": user, "item_id": shown[n % 5]["item_id"], "event": "click"}
        assert client.post("/v1/events", json=event, headers=h).status_code == 202
    db = f"sqlite:///{tmp_path / 'events.db'}"

    def ope(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "from llmrec.cli import main; main()", "ope", "--db", db, *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    res = ope("--shares", "0,0.2")
    assert res.returncode == 0, res.stderr
    assert "150 logged impressions" in res.stdout and "0.2" in res.stdout
    res = ope("--shares", "0,2")
    assert res.returncode == 2 and "--shares" in res.stderr and "Traceback" not in res.stderr
