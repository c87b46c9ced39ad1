from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmrec.data import columns as C
from llmrec.eval.protocols import cold_items, cold_users, loo
from llmrec.eval.runner import run
from llmrec.models import Content, UserText
from llmrec.ranking.hybrid import Hybrid
from llmrec.testing import RecommenderContract, block_dataset, tiny_dataset


@pytest.fixture(autouse=True)
def _home(home):  # text models cache vectors under $LLMREC_HOME
    return home


class TestContent(RecommenderContract):
    model_class = Content
    params = {"encoder": "hashing", "half_life": 5.0}


class TestUserText(RecommenderContract):
    model_class = UserText
    params = {"encoder": "hashing"}


class TestHybrid(RecommenderContract):
    model_class = Hybrid
    params = {
        "cf": "ease",
        "cf_params": {"reg": 10.0},
        "content_params": {"encoder": "hashing"},
        "weight": 0.3,
    }


def test_content_uses_dislikes() -> None:
    ds = block_dataset()
    # u0 (even block) rates every Drama item it saw 1/5: they become dislikes
    inter = ds.interactions.copy()
    inter[C.EVENT], inter[C.VALUE] = "rate", 5.0
    inter.loc[inter[C.USER_ID] == "u0", C.VALUE] = 1.0
    inter = pd.concat(
        [
            inter,
            pd.DataFrame(
                {
                    C.USER_ID: ["u0"],
                    C.ITEM_ID: ["1"],
                    C.TIMESTAMP: [100],
                    C.EVENT: ["rate"],
                    C.VALUE: [5.0],
                }
            ),
        ]
    )
    ds.interactions = inter
    train = loo(ds).train
    m = Content(encoder="hashing", dislike_weight=1.0, half_life=None).fit(train)
    u0 = train.users.index(["u0"])
    scores = m.score(u0)[0]
    even = np.array([int(i) % 2 == 0 for i in train.items.ids])
    assert scores[~even].mean() > scores[even].mean()  # liked Comedy, disliked Drama


def test_new_item_with_only_text_is_recommendable_without_retraining() -> None:
    train = loo(block_dataset()).train
    m = Content(encoder="hashing").fit(train)
    new = pd.DataFrame(
        {
            C.ITEM_ID: ["new-1", "new-2"],
            C.TITLE: ["Item new", "Item other"],
            C.GENRES: [["Drama"], ["Comedy"]],
        }
    )
    m.add_items(new)
    assert len(m.items_) == train.n_items + 2
    even_user = train.users.ids[0]  # "u0": the Drama block
    top, _ = m.recommend([even_user], k=train.n_items)
    assert top[0].index("new-1") < top[0].index("new-2")
    # changing an item's text replaces its vector
    m.add_items(pd.DataFrame({C.ITEM_ID: ["new-2"], C.TITLE: ["Item new"], C.GENRES: [["Drama"]]}))
    assert len(m.items_) == train.n_items + 2
    np.testing.assert_allclose(m.item_vectors_[-1], m.item_vectors_[-2], atol=1e-6)


def test_cold_items_content_beats_cf_which_cannot_rank_unseen_items() -> None:
    ds = block_dataset(n_users=80, n_items=200, seed=1)
    split = cold_items(ds, seed=0)
    pop = run(ds, "pop", split=split, search=False)
    ease = run(ds, "ease", split=split, search=False)
    content = run(ds, "content", split=split, params={"encoder": "hashing"})
    hybrid = run(ds, "hybrid", split=split, params={"content_params": {"encoder": "hashing"}})
    # constant CF scores on never-seen items: ties, broken by the seeded random order
    assert pop.metrics["ndcg@10"] == ease.metrics["ndcg@10"]
    assert content.metrics["ndcg@10"] > pop.metrics["ndcg@10"] + 0.2
    assert hybrid.params["weight"] > 0
    # on cold items only the content part varies (float rounding may reorder exact ties)
    assert hybrid.metrics["ndcg@10"] == pytest.approx(content.metrics["ndcg@10"], abs=0.01)
    assert hybrid.valid_ndcg10 <= 1.0 and hybrid.valid_ndcg10 < 0.9  # no validation leak


def test_hybrid_blends_and_tunes_on_validation() -> None:
    ds = block_dataset()
    split = loo(ds)
    r = run(ds, "hybrid", split=split, params={"content_params": {"encoder": "hashing"}})
    assert r.params["cf"] in {"itemknn", "ease"} and 0 <= r.params["weight"] <= 1
    weights = {t.params["weight"] for t in r.trials if "weight" in t.params}
    assert weights == set(Hybrid.search_space["weight"])


def test_cold_users_protocol_shortens_histories() -> None:
    ds = block_dataset(n_users=40, n_items=40)
    base, cold = loo(ds), cold_users(ds, seed=0, fraction=0.25, keep=5)
    assert len(cold.test.user_idx) == 10
    counts = np.asarray(cold.train.matrix[cold.test.user_idx].sum(axis=1)).ravel()
    assert counts.max() <= 5
    others = np.setdiff1d(np.arange(base.train.n_users), cold.test.user_idx)
    assert (cold.train.matrix[others] != base.train.matrix[others]).nnz == 0
    # the test ranking still excludes the validation item of each cold user
    v = dict(zip(base.valid.user_idx, base.valid.targets[:, 0], strict=True))
    for row, u in enumerate(cold.test.user_idx):
        assert cold.test.exclude[row, v[u]]


def test_user_text_profile_reads_history() -> None:
    train = loo(tiny_dataset()).train
    m = UserText(encoder="hashing").fit(train)
    assert m.user_vectors_.shape == (train.n_users, 64)
    assert not np.allclose(m.user_vectors_[0], m.user_vectors_[1])


def test_hybrid_without_search_is_refit_on_all_training_for_cold_items() -> None:
    ds = block_dataset(n_users=60, n_items=60)
    split = cold_items(ds, seed=0)
    r = run(
        ds,
        "hybrid",
        split=split,
        search=False,
        params={"cf": "ease", "content_params": {"encoder": "hashing"}},
    )
    assert r.params["weight"] == Hybrid.config_class().weight
    from llmrec.eval.tuning import tune

    tuned = tune(Hybrid, split, {"content_params": {"encoder": "hashing"}}, search=False)
    assert tuned.model.history_.nnz == split.train.matrix.nnz  # not valid_train's
