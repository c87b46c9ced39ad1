"""Scenario tasks (genre domains, OBD campaigns) and the three sharing modes of the model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmrec.data import columns as C
from llmrec.data.dataset import Dataset
from llmrec.errors import DataError
from llmrec.eval.evaluate import evaluate_scores
from llmrec.scenarios import MultiScenarioMF, genre_domains, obd_campaigns
from llmrec.scenarios.data import domain_of

DOMAINS = {"a": ("x",), "b": ("y",)}


def two_domains(train_b: int = 1) -> Dataset:
    """40 users in two taste clusters; each cluster likes its half of domain a's 20 items
    and of domain b's 20 items. Domain a is rich (8 events a user); domain b has
    ``train_b`` training events a user, then validation and test."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(40):
        cluster = u % 2
        a_items = rng.choice(10, 8, replace=False) + 10 * cluster
        b_items = rng.choice(10, train_b + 2, replace=False) + 10 * cluster + 20
        for t, i in enumerate([*a_items, *b_items]):
            rows.append((f"u{u}", str(i), t))
    inter = pd.DataFrame(rows, columns=[C.USER_ID, C.ITEM_ID, C.TIMESTAMP]).assign(
        **{C.EVENT: "view", C.VALUE: np.nan}
    )
    items = pd.DataFrame(
        {
            C.ITEM_ID: [str(i) for i in range(40)],
            C.TITLE: [f"t{i}" for i in range(40)],
            C.GENRES: [["x"] if i < 20 else ["y", "z"] for i in range(40)],
        }
    )
    return Dataset("two", inter, items)


def test_domain_rule_first_listed_domain_else_last() -> None:
    domains = {"family": ("Animation",), "thrill": ("Action",), "rest": ("Drama",)}
    assert domain_of(["Action", "Animation"], domains) == "family"  # the first domain wins
    assert domain_of(["Drama", "Action"], domains) == "thrill"
    assert domain_of(["Western"], domains) == "rest" and domain_of(None, domains) == "rest"


def test_genre_domains_are_loo_per_domain() -> None:
    data = genre_domains(two_domains(), DOMAINS)
    assert data.names == ["a", "b"]
    a, b = data.tasks
    assert sorted(data.items.ids[a.items]) == sorted(str(i) for i in range(20))
    assert sorted(data.items.ids[b.items]) == sorted(str(i) for i in range(20, 40))
    assert len(a.train.log) == 40 * 6 and len(b.train.log) == 40 * 1  # loo within the domain
    log = data.train_log()
    assert set(log["scenario"]) == {0, 1} and len(log) == 40 * 7
    assert (log["item"][log["scenario"] == 1] >= 0).all()
    with pytest.raises(DataError, match="genres"):
        genre_domains(Dataset("g", two_domains().interactions, None), DOMAINS)


def test_sharing_helps_the_sparse_domain() -> None:
    """One training event a user in domain b: alone it cannot tell the user's taste; shared
    user vectors learnt on domain a can."""
    data = genre_domains(two_domains(train_b=1), DOMAINS)
    b = data.tasks[1]
    ndcg = {}
    for mode in ("separate", "pooled", "multi"):
        m = MultiScenarioMF(mode, dim=8, epochs=80, patience=20, lr=0.03, seed=0).fit(data)
        s = m.score(1, b.test.user_idx)
        assert s.shape == (len(b.test.user_idx), 20)
        ndcg[mode] = evaluate_scores(s, b.test, b.train, (10,), None, False).metrics["ndcg@10"]
    assert ndcg["pooled"] > ndcg["separate"] + 0.1, ndcg
    assert ndcg["multi"] > ndcg["separate"] + 0.1, ndcg


def test_modes_and_text_vectors() -> None:
    data = genre_domains(two_domains(train_b=2), DOMAINS)
    vectors = np.random.default_rng(0).normal(size=(len(data.items), 6)).astype(np.float32)
    m = MultiScenarioMF("multi", dim=4, epochs=3, seed=1).fit(data, vectors)
    again = MultiScenarioMF("multi", dim=4, epochs=3, seed=1).fit(data, vectors)
    users = data.tasks[0].test.user_idx
    np.testing.assert_allclose(m.score(0, users), again.score(0, users))  # seeded
    assert set(m.best_epoch) == {None}
    sep = MultiScenarioMF("separate", dim=4, epochs=2).fit(data)
    assert set(sep.best_epoch) == {"a", "b"}
    with pytest.raises(ValueError, match="mode"):
        MultiScenarioMF("shared")


def test_obd_campaigns_share_items_across_logging_policies(real_settings) -> None:  # type: ignore[no-untyped-def]
    from llmrec.data import dataset as store
    from llmrec.data.fetch import fetch

    fetch("obd", real_settings.datasets_dir, real_settings.cache_dir / "wheels")
    data = obd_campaigns(store.load(real_settings.datasets_dir, "obd"))
    assert data.names == ["all", "men", "women"]
    assert [len(t.items) for t in data.tasks] == [80, 34, 46]
    for t in data.tasks:  # time order: training clicks before validation before test
        assert len(t.train.log) > 0 and len(t.valid.user_idx) > 0 and len(t.test.user_idx) > 0
        assert t.test.exclude is None
