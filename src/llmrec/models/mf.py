"""Matrix factorisation for implicit feedback, wrapping the ``implicit`` library (fast Cython).

Threads come from ``Settings.threads`` (default 1): BPR's parallel SGD is not reproducible.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from pydantic import Field
from threadpoolctl import threadpool_limits

from llmrec.config import get_settings
from llmrec.data.matrix import TrainData
from llmrec.models.base import Recommender, RecommenderConfig, Weighting, pad_rows


class _Factors(Recommender):
    """Shared scoring and state of factor models: score = user_factors . item_factors."""

    def _score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        return self.user_factors_[user_idx] @ self.item_factors_[item_idx].T

    def _add_users(self, n_old: int) -> None:
        # no fold-in yet: a new user scores 0 everywhere (ties go to the lower id)
        self.user_factors_ = pad_rows(self.user_factors_, len(self.users_))

    def _add_items(self, items: pd.DataFrame, index: np.ndarray, n_items: int) -> None:
        self.item_factors_ = pad_rows(self.item_factors_, n_items)

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.user_factors_, self.item_factors_ = state["user_factors"], state["item_factors"]


class ALSConfig(RecommenderConfig):
    embedding_size: int = Field(64, ge=1)
    reg: float = Field(0.1, ge=0)
    alpha: float = Field(5.0, gt=0, description="confidence = alpha * interaction weight")
    half_life: float | None = Field(
        None, gt=0, description="interaction weight 0.5 ** (age / half_life); None: 1"
    )
    epochs: int = Field(15, ge=1)
    weighting: Weighting = Field(
        "binary", description="history as 1 per item, or weighted by its events (data.events)"
    )


class ALS(_Factors):
    """Weighted matrix factorisation by alternating least squares (Hu, Koren, Volinsky 2008)."""

    name = "als"
    config_class = ALSConfig
    search_space = {
        "embedding_size": [64, 128],
        "reg": [0.1, 1.0, 10.0],
        "alpha": [1.0, 5.0, 20.0],
        "half_life": [None, 5.0],
    }
    config: ALSConfig

    def _fit(self, train: TrainData) -> None:
        c = self.config
        with threadpool_limits(limits=1, user_api="blas"):  # implicit's own advice
            model = AlternatingLeastSquares(
                factors=c.embedding_size,
                regularization=c.reg,
                alpha=c.alpha,
                iterations=c.epochs,
                random_state=c.seed,
                num_threads=get_settings().threads,
            )
            weights = self.weighted_history(np.arange(train.n_users), c.half_life, c.weighting)
            model.fit(weights.tocsr(), show_progress=False)
        self.user_factors_, self.item_factors_ = model.user_factors, model.item_factors


class BPRConfig(RecommenderConfig):
    embedding_size: int = Field(64, ge=1)
    learning_rate: float = Field(0.02, gt=0, description="initial SGD step")
    lr_decay: float = Field(0.98, gt=0, le=1, description="step multiplier after each epoch")
    reg: float = Field(0.01, ge=0)
    epochs: int = Field(150, ge=1, description="epochs; tuning stops early on validation")


class BPR(_Factors):
    """Bayesian personalised ranking (Rendle et al. 2009), SGD on sampled (u, i, j) triples."""

    name = "bpr"
    config_class = BPRConfig
    search_space = {"learning_rate": [0.01, 0.02], "reg": [0.001, 0.01]}
    iterative = True
    config: BPRConfig

    def _fit_epochs(self, train: TrainData) -> Iterator[int]:
        c = self.config
        model = BayesianPersonalizedRanking(
            factors=c.embedding_size,
            learning_rate=c.learning_rate,
            regularization=c.reg,
            # one Generator shared by every 1-epoch call: an int seed would resample the
            # same triples each epoch
            iterations=1,
            random_state=np.random.default_rng(c.seed),
            num_threads=get_settings().threads,
        )
        for epoch in range(1, c.epochs + 1):
            # a decaying step damps the epoch-to-epoch noise of SGD that early stopping sees
            model.learning_rate = c.learning_rate * c.lr_decay ** (epoch - 1)
            model.fit(train.matrix, show_progress=False)  # continues from the current factors
            self.user_factors_, self.item_factors_ = model.user_factors, model.item_factors
            yield epoch
