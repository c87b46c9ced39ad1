"""Most popular: the number of training users per item."""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmrec.data.matrix import TrainData, item_columns, pad_rows
from llmrec.models.base import Recommender


class Pop(Recommender):
    """Scores every item by how many training users interacted with it (same for all users)."""

    name = "pop"

    def _fit(self, train: TrainData) -> None:
        self.counts_ = np.asarray(train.matrix.sum(axis=0)).ravel().astype(np.float32)

    def _score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts_[item_idx], (len(user_idx), len(item_idx)))

    def _add_items(self, items: pd.DataFrame, index: np.ndarray, n_items: int) -> None:
        self.counts_ = pad_rows(self.counts_, n_items)

    def _state(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts_}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.counts_ = state["counts"]


class Random(Recommender):
    """Seeded uniform random scores, fixed per (user, item): the floor every model must beat."""

    name = "random"

    def _fit(self, train: TrainData) -> None:
        self.seed_ = np.array([self.config.seed])

    def _score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        # one generator per user, so a user's scores do not depend on the batch it is in
        out = np.empty((len(user_idx), len(self.items_)), dtype=np.float32)
        for row, u in enumerate(user_idx):
            out[row] = np.random.default_rng([int(self.seed_[0]), int(u)]).random(len(self.items_))
        return item_columns(out, item_idx)

    def _add_items(self, items: pd.DataFrame, index: np.ndarray, n_items: int) -> None:
        return None

    def _state(self) -> dict[str, np.ndarray]:
        return {"seed": self.seed_}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.seed_ = state["seed"]
