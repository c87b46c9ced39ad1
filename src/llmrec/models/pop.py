"""Most popular: the number of training users per item."""

from __future__ import annotations

import numpy as np

from llmrec.data.matrix import TrainData
from llmrec.models.base import Recommender


class Pop(Recommender):
    """Scores every item by how many training users interacted with it (same for all users)."""

    name = "pop"

    def _fit(self, train: TrainData) -> None:
        self.counts_ = np.asarray(train.matrix.sum(axis=0)).ravel().astype(np.float32)

    def _score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts_[item_idx], (len(user_idx), len(item_idx)))

    def _state(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts_}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.counts_ = state["counts"]
