"""``repeat``: the user's own items again, by how often and how lately they had them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field

from llmrec.data.matrix import TrainData, item_columns, pad_rows, splice_rows
from llmrec.models.base import Recommender, RecommenderConfig


class RepeatConfig(RecommenderConfig):
    half_life: float | None = Field(
        5.0, gt=0, description="an item's recency weighs 0.5 ** (age / half_life); None: 1"
    )
    frequency: float = Field(1.0, ge=0, description="weight of log(1 + times the user had it)")


class Repeat(Recommender):
    """score(u, i) = frequency * log(1 + n_ui) + 0.5 ** (age_ui / half_life) for the items u
    had (age 0 = the latest); items u never had rank after them by popularity. Useful only
    where people return to items (the ``repeats`` protocol, shop data): under ``loo``, which
    excludes the history, it is popularity."""

    name = "repeat"
    config_class = RepeatConfig
    # both weigh the user's own items at scoring time: one fit serves every setting
    score_space = {"half_life": [None, 20.0, 5.0, 1.0], "frequency": [0.0, 0.5, 1.0, 3.0]}
    config: RepeatConfig

    def _fit(self, train: TrainData) -> None:
        self._observe(train)
        pop = np.asarray(train.matrix.sum(axis=0)).ravel()
        self.popularity_ = (pop / max(pop.max(), 1.0) * 1e-3).astype(np.float32)

    def _observe(self, data: TrainData) -> None:
        self.counts_ = _counts(data)

    def _observe_users(self, part: TrainData, replaced: np.ndarray) -> None:
        self.counts_ = splice_rows(self.counts_, _counts(part), replaced)

    def _score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        c = self.config
        counts = self.counts_[user_idx]
        had = self.weighted_history(user_idx, c.half_life)  # same pattern as the history
        own = had.copy()
        own.data = own.data + c.frequency * np.log1p(counts[had.nonzero()].A1)
        out = own.toarray() + self.popularity_[None, :]
        return item_columns(out, item_idx)

    def _add_users(self, n_old: int) -> None:
        self.counts_ = _grow(self.counts_, (len(self.users_), self.counts_.shape[1]))

    def _add_items(self, items: pd.DataFrame, index: np.ndarray, n_items: int) -> None:
        self.popularity_ = pad_rows(self.popularity_, n_items)
        self.counts_ = _grow(self.counts_, (self.counts_.shape[0], n_items))

    def _state(self) -> dict[str, np.ndarray]:
        m = self.counts_
        return {
            "popularity": self.popularity_,
            "counts_indptr": m.indptr,
            "counts_indices": m.indices,
            "counts_data": m.data,
        }

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.popularity_ = state["popularity"]
        self.counts_ = sp.csr_matrix(
            (state["counts_data"], state["counts_indices"], state["counts_indptr"]),
            shape=(len(self.users_), len(self.items_)),
        )


def _grow(m: sp.csr_matrix, shape: tuple[int, int]) -> sp.csr_matrix:
    m = m.tocoo()
    return sp.csr_matrix((m.data, (m.row, m.col)), shape=shape)


def _counts(data: TrainData) -> sp.csr_matrix:
    """Events per (user, item): how often each user came back to each item."""
    log = data.log
    counts = sp.csr_matrix(
        (np.ones(len(log), np.float32), (log["user_idx"], log["item_idx"])),
        shape=(data.n_users, data.n_items),
    )
    counts.sum_duplicates()
    return counts
