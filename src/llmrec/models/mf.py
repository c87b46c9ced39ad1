"""Matrix factorisation for implicit feedback, wrapping the ``implicit`` library (fast Cython).

Threads come from ``Settings.threads`` (default 1): BPR's parallel SGD is not reproducible.
``observe`` folds in the users whose history changed (``fold_in``): ALS solves their vectors
exactly against the fixed item factors, BPR runs one more epoch of SGD on them; so the test
ranking, like a live request, reflects the latest events, and a new user is not all zeros.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from pydantic import Field
from threadpoolctl import threadpool_limits

from llmrec.config import get_settings
from llmrec.data.matrix import TrainData, pad_rows
from llmrec.models.base import Recommender, RecommenderConfig, Weighting

if TYPE_CHECKING:
    from typing import Self

    import scipy.sparse as sp

_FOLD_IN = (
    "observe() refits the vectors of users whose history changed, items fixed (False: learned "
    "user vectors stay; a new user scores 0 everywhere)"
)


def changed_users(old: sp.csr_matrix, new: sp.csr_matrix) -> np.ndarray:
    """Rows of ``new`` that differ from ``old`` (rows past ``old``'s end: the non-empty)."""
    n_old = old.shape[0]
    differs = (new[:n_old] != old).getnnz(axis=1) > 0
    added = np.diff(new.indptr)[n_old:] > 0
    return np.flatnonzero(np.concatenate([differs, added]))


class _Factors(Recommender):
    """Shared scoring and state of factor models: score = user_factors . item_factors."""

    def _score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        return self.user_factors_[user_idx] @ self.item_factors_[item_idx].T

    def observe(self, data: TrainData) -> Self:
        old = self.history_
        super().observe(data)
        if not self.config.fold_in:  # type: ignore[attr-defined]
            return self  # no comparison of the two histories: the service observes often
        users = changed_users(old, self.history_)
        if len(users):
            self.user_factors_ = np.array(self.user_factors_)  # a loaded array may be read-only
            self._fold_in(users)
        return self

    def _fold_in(self, users: np.ndarray) -> None:
        raise NotImplementedError

    def _add_users(self, n_old: int) -> None:
        # zero rows; observe() folds in those with events when fold_in is on
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
    fold_in: bool = Field(True, description=_FOLD_IN)


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

    def _fold_in(self, users: np.ndarray) -> None:
        """Each user's least-squares solution against the fixed item factors: the ALS user
        step itself, so a folded-in vector is what one more half-iteration would give."""
        c = self.config
        solver = AlternatingLeastSquares(
            factors=c.embedding_size,
            regularization=c.reg,
            alpha=c.alpha,
            num_threads=get_settings().threads,
        )
        solver.item_factors = np.ascontiguousarray(self.item_factors_, dtype=np.float32)
        weights = self.weighted_history(users, c.half_life, c.weighting).tocsr()
        with threadpool_limits(limits=1, user_api="blas"):
            self.user_factors_[users] = solver.recalculate_user(users, weights)


class BPRConfig(RecommenderConfig):
    embedding_size: int = Field(64, ge=1)
    learning_rate: float = Field(0.02, gt=0, description="initial SGD step")
    lr_decay: float = Field(0.98, gt=0, le=1, description="step multiplier after each epoch")
    reg: float = Field(0.01, ge=0)
    epochs: int = Field(150, ge=1, description="epochs; tuning stops early on validation")
    fold_in: bool = Field(True, description=_FOLD_IN)


class BPR(_Factors):
    """Bayesian personalised ranking (Rendle et al. 2009), SGD on sampled (u, i, j) triples."""

    name = "bpr"
    config_class = BPRConfig
    # an 18-point grid (size, wider rate and reg) was no better on ml-100k or ibm-articles at
    # 4x the tuning time: validation cannot tell the configurations apart (bench_bpr.py)
    search_space = {"learning_rate": [0.01, 0.02], "reg": [0.001, 0.01]}
    iterative = True
    # its validation NDCG@10 swings more from check to check than it trends, so single
    # checks stopped on the first lucky one; the trailing mean of 3 matched or beat that and
    # implicit's own defaults on ml-100k and ibm-articles (bench_bpr_epochs.py)
    smooth_checks = 3
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

    def _fold_in(self, users: np.ndarray) -> None:
        """One more training epoch for these users' vectors, items fixed: each user gets as
        many SGD steps as they have items (a positive of theirs against a uniform negative),
        at the step size training ended with; ``implicit``'s item bias column stays paired
        with a user constant of 1. Seeded: the same events give the same vectors."""
        c = self.config
        hist = self.history_[users].tocsr()
        hist.data = (hist.data > 0).astype(np.float32)  # dislikes are no positives
        hist.eliminate_zeros()
        lens = np.diff(hist.indptr)
        u = self.user_factors_[users].astype(np.float32)
        u[:, -1] = 1.0
        items = self.item_factors_
        lr = c.learning_rate * c.lr_decay ** (c.epochs - 1)
        rng = np.random.default_rng(c.seed)
        for step in range(int(lens.max(initial=0))):
            on = np.flatnonzero(lens > step)
            pos = hist.indices[hist.indptr[on] + rng.integers(0, lens[on])]
            diff = items[pos] - items[rng.integers(0, len(items), len(on))]
            x = np.einsum("ij,ij->i", u[on], diff)
            grad = (1.0 / (1.0 + np.exp(x)))[:, None] * diff - c.reg * u[on]
            grad[:, -1] = 0.0
            u[on] += lr * grad
        self.user_factors_[users] = u
