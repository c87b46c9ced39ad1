"""The contract every recommender honours. A model's test class inherits it and sets ``model``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from llmrec.data import columns as C
from llmrec.data.ids import IdMap
from llmrec.data.matrix import TrainData
from llmrec.errors import LlmrecError
from llmrec.eval.protocols import loo
from llmrec.models.base import Recommender
from llmrec.testing.fixtures import block_dataset


class RecommenderContract:
    """Inherit and set ``model_class`` (and ``params`` for fast, small fits)."""

    model_class: ClassVar[type[Recommender]]
    params: ClassVar[dict[str, Any]] = {}

    @pytest.fixture(scope="class")
    @classmethod
    def train(cls) -> TrainData:
        return loo(block_dataset()).train

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, train: TrainData) -> Recommender:
        return cls.model_class(**cls.params).fit(train)

    def test_default_construction_and_config_round_trip(self) -> None:
        m = self.model_class()
        again = self.model_class(**m.config.model_dump())
        assert again.config == m.config

    def test_unknown_parameter_is_a_clear_error(self) -> None:
        with pytest.raises(LlmrecError, match="no_such_param"):
            self.model_class(no_such_param=1)

    def test_score_space_leaves_the_fitted_state_alone(self, train: TrainData) -> None:
        """Tuning tries ``score_space`` values on one fit: each must change scoring only."""
        for key, values in self.model_class.score_space.items():
            if key in self.params:
                continue
            states = [
                self.model_class(**{**self.params, key: v}).fit(train)._state() for v in values[:3]
            ]
            for other in states[1:]:
                assert other.keys() == states[0].keys()
                for name, arr in states[0].items():
                    np.testing.assert_array_equal(other[name], arr, err_msg=f"{key}: {name}")

    def test_score_shape_and_candidates(self, fitted: Recommender, train: TrainData) -> None:
        users = np.array([0, 3, 5])
        full = fitted.score(users)
        assert full.shape == (3, train.n_items) and full.dtype == np.float32
        cand = np.array([7, 2, 11])
        np.testing.assert_allclose(fitted.score(users, cand), full[:, cand], rtol=1e-5)

    def test_batch_equals_one_by_one(self, fitted: Recommender, train: TrainData) -> None:
        users = np.arange(train.n_users)
        batch = fitted.score(users)
        single = np.vstack([fitted.score(np.array([u])) for u in users])
        np.testing.assert_allclose(batch, single, rtol=1e-5, atol=1e-6)

    def test_recommend_excludes_seen_and_sorts(self, fitted: Recommender, train: TrainData) -> None:
        uid = train.users.ids[0]
        items, scores = fitted.recommend([uid], k=5)
        seen = set(train.items.ids[train.matrix[0].indices])
        assert len(items[0]) == 5 and not seen & set(items[0])
        assert np.all(np.diff(scores[0]) <= 0)
        with_seen, _ = fitted.recommend([uid], k=train.n_items, exclude_seen=False)
        assert seen <= set(with_seen[0])

    def test_known_answer_ranking(self, fitted: Recommender, train: TrainData) -> None:
        """Checkerboard: each user's top 3 come from their own block (Pop overrides this)."""
        hits = 0
        for uid in train.users.ids:
            top, _ = fitted.recommend([uid], k=3)
            block = int(uid[1:]) % 2
            hits += sum(int(i) % 2 == block for i in top[0])
        assert hits / (3 * train.n_users) > 0.9

    def test_unknown_user(self, fitted: Recommender) -> None:
        with pytest.raises(LlmrecError, match="unknown user"):
            fitted.recommend(["nobody"], k=3)

    def test_unfitted_model_refuses(self) -> None:
        with pytest.raises(LlmrecError, match="not fitted"):
            self.model_class().score(np.array([0]))

    def test_save_load_identical(self, fitted: Recommender, tmp_path: Path) -> None:
        fitted.save(tmp_path / "m")
        loaded = Recommender.load(tmp_path / "m")
        assert type(loaded) is type(fitted) and loaded.config == fitted.config
        users = np.arange(len(fitted.users_))
        np.testing.assert_array_equal(loaded.score(users), fitted.score(users))
        fitted.save(tmp_path / "m")  # replacing an existing save works
        assert (tmp_path / "m" / "manifest.json").is_file()

    def test_seeded_fit_is_deterministic(self, train: TrainData) -> None:
        a = self.model_class(**self.params).fit(train).score(np.arange(train.n_users))
        b = self.model_class(**self.params).fit(train).score(np.arange(train.n_users))
        np.testing.assert_array_equal(a, b)

    def test_live_new_user_and_new_item(self, train: TrainData, tmp_path: Path) -> None:
        """What the service does between refits: a user it never saw arrives with events
        (``observe``), a new item arrives with text (``add_items``); both work at once."""
        m = self.model_class(**self.params).fit(train)
        n = train.n_users
        users = IdMap(np.r_[train.users.ids, ["newcomer"]])
        seen = train.items.index(["0", "2"])  # two Drama items
        extra = pd.DataFrame(
            {"user_idx": [n, n], "item_idx": seen, C.TIMESTAMP: [10**6, 10**6 + 1]}
        ).assign(**{C.EVENT: "view", C.VALUE: np.nan})
        log = pd.concat([train.log, extra], ignore_index=True)
        m.observe(TrainData.build(log, users, train.items, train.item_table))
        top, _ = m.recommend(["newcomer"], k=3)
        assert len(top[0]) == 3 and not {"0", "2"} & set(top[0])

        new = pd.DataFrame(
            {C.ITEM_ID: ["new-item"], C.TITLE: ["Drama item new"], C.GENRES: [["Drama"]]}
        )
        m.add_items(new)
        m.add_items(new)  # the same id again updates, never duplicates
        assert len(m.items_) == train.n_items + 1
        full = m.score(np.arange(n + 1))
        assert full.shape == (n + 1, train.n_items + 1) and np.isfinite(full).all()
        everything, _ = m.recommend(["newcomer"], k=train.n_items + 1)
        assert "new-item" in everything[0]
        with pytest.raises(LlmrecError, match="observe"):
            m.observe(train)  # fewer items than the model now has

        m.save(tmp_path / "grown")
        again = Recommender.load(tmp_path / "grown")
        np.testing.assert_allclose(again.score(np.arange(n + 1)), full, rtol=1e-5, atol=1e-6)
