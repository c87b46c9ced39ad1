"""EASE (Steck 2019): a closed-form item-item linear autoencoder."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import Field
from scipy import linalg

from llmrec.data.matrix import TrainData, item_columns
from llmrec.models.base import HistoryConfig, Recommender
from llmrec.models.memory import check_memory


class EASEConfig(HistoryConfig):
    reg: float = Field(500.0, gt=0, description="L2 penalty lambda")


class EASE(Recommender):
    """B = argmin |X - XB|^2 + reg |B|^2 with diag(B) = 0; dense in items (n_items^2 memory)."""

    name = "ease"
    config_class = EASEConfig
    search_space = {"reg": [100.0, 200.0, 300.0, 500.0, 800.0, 1200.0]}
    # scoring-only (the history's weights): tried on each fit without refitting
    score_space = {"half_life": [None, 50.0, 20.0, 10.0, 5.0, 2.0]}
    config: EASEConfig

    def check_fits(self, n_users: int, n_items: int) -> None:
        # a 37,588-item fit under a 16 GiB budget on a 23 GiB machine that already held the
        # data faulted inside BLAS halfway (bench_tune_users, book-crossing): free memory too
        check_memory(
            "ease", f"{n_items:,} items", fit_bytes(n_items), "the dense item x item matrix",
            "use itemknn for this catalogue",
        )  # fmt: skip

    def _fit(self, train: TrainData) -> None:
        x = train.weights if self.config.weighting == "events" else train.matrix
        gram = (x.T @ x).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.config.reg
        p = linalg.inv(gram, overwrite_a=True, check_finite=False)
        p /= -np.diag(p)  # in place: one float64 n x n at a time (fit_bytes)
        p[np.diag_indices_from(p)] = 0.0
        self.weights_ = np.ascontiguousarray(p, dtype=np.float32)  # sparse @ F-order copies

    def _score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        h = self.weighted_history(user_idx, self.config.half_life, self.config.weighting)
        return item_columns(np.asarray(h @ self.weights_), item_idx)  # weights sliced: a copy

    def _add_items(self, items: pd.DataFrame, index: np.ndarray, n_items: int) -> None:
        w = self.weights_
        if n_items > len(w):  # new items neither predict nor are predicted
            self.weights_ = np.zeros((n_items, n_items), w.dtype)
            self.weights_[: len(w), : len(w)] = w

    def _state(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights_}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.weights_ = np.ascontiguousarray(state["weights"])


def fit_bytes(n_items: int) -> int:
    """Peak memory of ``_fit``: the float64 Gram matrix inverted in place, then its float32
    copy (8 + 4 bytes per item pair); the sparse input is small beside it."""
    return 12 * n_items * n_items
