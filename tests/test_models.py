from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmrec.data import columns as C
from llmrec.data.dataset import Dataset
from llmrec.data.matrix import TrainData
from llmrec.errors import ConfigError, LlmrecError
from llmrec.eval.protocols import loo
from llmrec.models import (
    ALS,
    BPR,
    EASE,
    EXTRA_MODELS,
    MODELS,
    ItemKNN,
    Pop,
    Random,
    Recommender,
    Repeat,
    UserKNN,
)
from llmrec.models.knn import cosine_neighbours
from llmrec.testing import RecommenderContract, tiny_dataset


class TestPop(RecommenderContract):
    model_class = Pop

    def test_known_answer_ranking(self, fitted: Recommender, train: TrainData) -> None:
        counts = np.asarray(train.matrix.sum(axis=0)).ravel()
        np.testing.assert_array_equal(fitted.score(np.array([0]))[0], counts)


class TestRandom(RecommenderContract):
    model_class = Random

    def test_known_answer_ranking(self, fitted: Recommender, train: TrainData) -> None:
        s = fitted.score(np.arange(train.n_users))
        assert np.all((s >= 0) & (s < 1)) and len(np.unique(s[0])) == train.n_items
        assert not np.array_equal(s[0], s[1])  # each user a different order
        other = Random(seed=7).fit(train).score(np.arange(train.n_users))
        assert not np.array_equal(s, other)


class TestItemKNN(RecommenderContract):
    model_class = ItemKNN
    params = {"k": 10, "shrink": 0.0}


class TestItemKNNRecency(RecommenderContract):
    model_class = ItemKNN
    params = {"k": 10, "shrink": 0.0, "half_life": 2.0}


class TestUserKNN(RecommenderContract):
    model_class = UserKNN
    params = {"k": 10, "shrink": 0.0}


class TestUserKNNRecency(RecommenderContract):
    model_class = UserKNN
    params = {"k": 10, "shrink": 0.0, "half_life": 3.0}


class TestEASE(RecommenderContract):
    model_class = EASE
    params = {"reg": 10.0, "half_life": 5.0}


class TestALS(RecommenderContract):
    model_class = ALS
    params = {"embedding_size": 4, "reg": 1.0, "alpha": 1.0, "epochs": 15}


class TestBPR(RecommenderContract):
    model_class = BPR
    params = {"embedding_size": 8, "learning_rate": 0.05, "epochs": 60}


def _all_subclasses(cls: type) -> set[type]:
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub} | _all_subclasses(sub)
    return out


def test_every_model_has_a_contract_test_and_a_name() -> None:
    import importlib

    from llmrec.models import PIPELINES, get_model_class

    for module in (
        "test_sequential",
        "test_ranker",
        "test_content_models",
        "test_llm",
        "test_lm_finetune",
    ):
        importlib.import_module(module)  # their contract classes, when run alone
    named = set(MODELS.values()) | set(EXTRA_MODELS.values())
    named |= {get_model_class(n) for n in PIPELINES}
    concrete = {c for c in _all_subclasses(Recommender) if not c.__name__.startswith("_")}
    tested = {c.model_class for c in _all_subclasses(RecommenderContract)}
    assert concrete <= tested
    assert named == concrete


def test_cosine_neighbours_by_hand() -> None:
    import scipy.sparse as sp

    x = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [0, 1, 1]], dtype=np.float32))
    s = cosine_neighbours(x, k=1, shrink=0.0).toarray()
    # columns 0 and 1: cos = 2 / (sqrt(2) * sqrt(3)); 1 and 2: 1 / sqrt(3); 0 and 2: 0
    assert s[0, 1] == pytest.approx(2 / np.sqrt(6)) and s[0, 2] == 0
    assert s[2, 1] == pytest.approx(1 / np.sqrt(3)) and s[1, 0] == pytest.approx(2 / np.sqrt(6))
    assert np.count_nonzero(s, axis=1).tolist() == [1, 1, 1]
    shrunk = cosine_neighbours(x, k=1, shrink=1.0).toarray()
    assert shrunk[0, 1] == pytest.approx(2 / (np.sqrt(6) + 1))


def test_ease_closed_form_by_hand() -> None:
    train = loo(tiny_dataset()).train
    m = EASE(reg=1.0).fit(train)
    x = train.matrix.toarray().astype(np.float64)
    p = np.linalg.inv(x.T @ x + np.eye(x.shape[1]))
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0)
    np.testing.assert_allclose(m.weights_, b, rtol=1e-4, atol=1e-6)
    assert np.all(np.diag(m.weights_) == 0)


def test_recency_weights_latest_item_most() -> None:
    train = loo(tiny_dataset()).train
    m = Pop().fit(train)
    # u3 trained on 2 (t=5), 3 (t=6): latest weighs 1, the one before 0.5 ** (1 / 1)
    u3 = int(train.users.index(["u3"])[0])
    w = m.weighted_history(np.array([u3]), half_life=1.0).toarray()[0]
    items = dict(zip(train.items.ids, w, strict=True))
    assert items["3"] == 1.0 and items["2"] == 0.5 and items["1"] == 0.0


def test_invalid_parameters_are_clear() -> None:
    with pytest.raises(ConfigError, match="reg"):
        EASE(reg=-1)
    with pytest.raises(ConfigError, match="unknown model"):
        from llmrec.models import get_model_class

        get_model_class("sasrec-xl")


def test_load_rejects_non_model_folder(tmp_path: Path) -> None:
    with pytest.raises(LlmrecError, match="not a saved llmrec model"):
        Recommender.load(tmp_path)


def test_userknn_matches_precomputed_cosine_neighbours() -> None:
    from llmrec.testing import block_dataset

    train = loo(block_dataset()).train
    m = UserKNN(k=train.n_users, shrink=5.0).fit(train)
    sim = cosine_neighbours(train.matrix.T.tocsr(), k=train.n_users, shrink=5.0)
    expected = (sim @ train.matrix).toarray()
    np.testing.assert_allclose(m.score(np.arange(train.n_users)), expected, rtol=1e-4, atol=1e-5)


class TestRepeat(RecommenderContract):
    model_class = Repeat

    def test_known_answer_ranking(self, fitted: Recommender, train: TrainData) -> None:
        """With seen items allowed: the user's own items first, most frequent and latest
        first; the rest by popularity."""
        counts = np.asarray(train.matrix.sum(axis=0)).ravel()
        for u, uid in enumerate(train.users.ids[:5]):
            own = set(train.items.ids[train.matrix[u].indices])
            items, _ = fitted.recommend([uid], k=len(own) + 2, exclude_seen=False)
            assert set(items[0][: len(own)]) == own
            latest = train.items.ids[train.recency[u].indices[train.recency[u].data == 1]]
            assert items[0][0] in latest
            rest, _ = fitted.recommend([uid], k=3)
            assert [counts[train.items.index([i])[0]] for i in rest[0]] == sorted(
                (counts[train.items.index([i])[0]] for i in rest[0]), reverse=True
            )

    def test_frequency_counts(self) -> None:
        inter = pd.DataFrame(
            {
                C.USER_ID: ["a"] * 5 + ["b"],
                C.ITEM_ID: ["1", "2", "2", "2", "3", "1"],
                C.TIMESTAMP: [1, 2, 3, 4, 5, 1],
            }
        )
        from llmrec.data.splits import full_train

        data = full_train(Dataset("r", inter, pd.DataFrame({C.ITEM_ID: ["1", "2", "3"]})))
        m = Repeat(half_life=None, frequency=1.0).fit(data)
        items, _ = m.recommend(["a"], k=3, exclude_seen=False)
        assert items[0][0] == "2"  # had three times
        m = Repeat(half_life=1.0, frequency=0.0).fit(data)
        assert m.recommend(["a"], k=1, exclude_seen=False)[0][0] == ["3"]  # the latest
