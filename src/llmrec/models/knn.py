"""Neighbourhood models: item-based and user-based collaborative filtering (cosine + shrink)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field

from llmrec.data.matrix import TrainData, item_columns, widen
from llmrec.models.base import HistoryConfig, Recommender
from llmrec.progress import steps

_BLOCK = 2048  # columns of the similarity computed at once


def cosine_neighbours(x: sp.csr_matrix, k: int, shrink: float) -> sp.csr_matrix:
    """Row j: the ``k`` columns of ``x`` most similar to column j (shrunk cosine), j excluded.

    sim(i, j) = <x_i, x_j> / (|x_i| |x_j| + shrink). Computed in column blocks so memory stays
    at BLOCK x n, then pruned to the top ``k`` per row.
    """
    xc = x.tocsc().astype(np.float64)
    n = xc.shape[1]
    norms = np.sqrt(np.asarray(xc.multiply(xc).sum(axis=0)).ravel())
    k = min(k, max(n - 1, 1))
    parts = []
    xt = xc.T.tocsr()
    with steps("item neighbours (blocks of items)", -(-n // _BLOCK), 10) as advance:
        for lo in range(0, n, _BLOCK):
            parts.append(_neighbour_block(xt, xc, norms, lo, min(lo + _BLOCK, n), k, shrink))
            advance(1)
    rows, cols, vals = (list(p) for p in zip(*parts, strict=True))
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )


def _neighbour_block(
    xt: sp.csr_matrix,
    xc: sp.csc_matrix,
    norms: np.ndarray,
    lo: int,
    hi: int,
    k: int,
    shrink: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, similarities) of the top-``k`` neighbours of items ``lo:hi``."""
    n = xc.shape[1]
    # (b, n): co-occurrence of the block's items with all; the whole (sparse) Gram matrix
    # would hold every co-occurring pair at once: billions on a big shop's log
    block = (xt[lo:hi] @ xc).toarray()
    block /= np.outer(norms[lo:hi], norms) + shrink + 1e-12
    block[np.arange(hi - lo), np.arange(lo, hi)] = 0.0
    top = np.argpartition(-block, k - 1, axis=1)[:, :k] if k < n else np.argsort(-block)
    v = np.take_along_axis(block, top, axis=1)
    keep = v > 0
    return np.broadcast_to(np.arange(lo, hi)[:, None], top.shape)[keep], top[keep], v[keep]


class KNNConfig(HistoryConfig):
    k: int = Field(100, ge=1, description="neighbours kept per item (or user)")
    shrink: float = Field(10.0, ge=0, description="shrinkage of the cosine for rare pairs")


class ItemKNN(Recommender):
    """score(u, j) = sum over items i in u's history of sim(j, i), j's top-k neighbours only."""

    name = "itemknn"
    config_class = KNNConfig
    search_space = {"k": [50, 100, 200, 400], "shrink": [0.0, 10.0, 50.0]}
    # scoring-only (the history's weights): tried on each fit without refitting
    score_space = {"half_life": [None, 20.0, 5.0, 2.0]}
    config: KNNConfig

    def _fit(self, train: TrainData) -> None:
        c = self.config
        x = train.weights if c.weighting == "events" else train.matrix
        self.sim_ = cosine_neighbours(x, c.k, c.shrink)

    def _score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        h = self.weighted_history(user_idx, self.config.half_life, self.config.weighting)
        return item_columns((h @ self._sim_t()).toarray(), item_idx)  # sim sliced: a copy

    def _sim_t(self) -> sp.csr_matrix:
        """sim_ transposed, as CSR, kept while sim_ is the same object: a product with
        ``sim_.T`` (CSC) converted the whole matrix on every call (44 ms of a list at 100k
        items: benchmarks/profile_catalogue.py at 55ba4c1)."""
        cached = self.__dict__.get("_sim_t_cache")
        if cached is None or cached[0] is not self.sim_:
            cached = (self.sim_, self.sim_.T.tocsr())
            self.__dict__["_sim_t_cache"] = cached
        return cached[1]

    def _add_items(self, items: pd.DataFrame, index: np.ndarray, n_items: int) -> None:
        self.sim_ = widen(self.sim_, (n_items, n_items))  # no neighbours until refit

    def _state(self) -> dict[str, np.ndarray]:
        return _csr_state(self.sim_)

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.sim_ = _csr_load(state)


class UserKNN(Recommender):
    """score(u, j) = sum over u's top-k most similar users v of sim(u, v) * x_vj.

    Neighbours are found at scoring time from u's (recency-weighted) history, so a history
    that changed since ``fit`` is used as it is now; the cost is one sparse product per batch.
    """

    name = "userknn"
    config_class = KNNConfig
    # neighbours are found at scoring time: one fit (the norms) serves every setting
    score_space = {
        "k": [20, 50, 100, 200],
        "shrink": [0.0, 10.0, 50.0],
        "half_life": [None, 20.0, 5.0],
    }
    config: KNNConfig

    def _fit(self, train: TrainData) -> None:
        self.norms_ = np.sqrt(np.asarray(train.matrix.sum(axis=1)).ravel()).astype(np.float32)

    def _score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        c = self.config
        q = self.weighted_history(user_idx, c.half_life, c.weighting)
        q_norm = np.sqrt(np.asarray(q.multiply(q).sum(axis=1))).astype(np.float32)
        sim = (q @ self.history_.T).toarray()
        sim /= q_norm * self.norms_[None, :] + c.shrink + 1e-12
        sim[np.arange(len(user_idx)), user_idx] = 0.0  # a user is not their own neighbour
        k = min(c.k, sim.shape[1])
        if k < sim.shape[1]:
            drop = np.argpartition(-sim, k - 1, axis=1)[:, k:]
            np.put_along_axis(sim, drop, 0.0, axis=1)
        # neighbours are found by what they consumed; they vote with their event weights
        votes = self.strength_ if c.weighting == "events" else self.history_
        return np.asarray(votes[:, item_idx].T.dot(sim.T).T)

    def _state(self) -> dict[str, np.ndarray]:
        return {"norms": self.norms_}

    def _add_users(self, n_old: int) -> None:
        new = np.asarray(self.history_[n_old:].sum(axis=1)).ravel()
        self.norms_ = np.r_[self.norms_, np.sqrt(new)].astype(np.float32)

    def _add_items(self, items: pd.DataFrame, index: np.ndarray, n_items: int) -> None:
        return None  # neighbours' histories score new items once someone has seen them

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.norms_ = state["norms"]


def _csr_state(m: sp.csr_matrix) -> dict[str, np.ndarray]:
    return {"data": m.data, "indices": m.indices, "indptr": m.indptr, "shape": np.array(m.shape)}


def _csr_load(state: dict[str, np.ndarray]) -> sp.csr_matrix:
    return sp.csr_matrix(
        (state["data"], state["indices"], state["indptr"]), shape=tuple(state["shape"])
    )
