"""Neighbourhood models: item-based and user-based collaborative filtering (cosine + shrink)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field

from llmrec.data.matrix import TrainData, item_columns, widen
from llmrec.models.base import HistoryConfig, Recommender
from llmrec.progress import steps

_BLOCK_PAIRS = 1 << 23  # co-occurring pairs (an upper bound) in one block's sparse product
# a block whose items co-occur with more than this share of the catalogue is cut as a dense
# array: index arrays for nearly every pair cost more (ml-1m's neighbours 3.3 s sparse-only,
# 2.0 s with the dense cut: two runs of make bench-item-neighbours; the share is not tuned)
_DENSE_SHARE = 0.3


def cosine_neighbours(x: sp.csr_matrix, k: int, shrink: float) -> sp.csr_matrix:
    """Row j: the ``k`` columns of ``x`` most similar to column j (shrunk cosine), j excluded.

    sim(i, j) = <x_i, x_j> / (|x_i| |x_j| + shrink); only positive similarities are kept, and
    of equal ones the lower column index (so a top-k is the first k of a larger top-k). The
    co-occurrences are sparse products over blocks of columns whose pairs fit a budget, so
    memory and time grow with the co-occurring pairs, not with columns squared; a block that
    co-occurs with most columns is cut as a dense array (the same result, faster there).
    """
    xc = x.tocsc().astype(np.float64)
    n = xc.shape[1]
    norms = np.sqrt(np.asarray(xc.multiply(xc).sum(axis=0)).ravel())
    k = min(k, max(n - 1, 1))
    xt = xc.T.tocsr()
    edges = _pair_blocks(xt)
    parts = []
    with steps("item neighbours (blocks of items)", len(edges) - 1, 10) as advance:
        for lo, hi in itertools.pairwise(edges):
            product = xt[lo:hi] @ xc
            dense = product.nnz > _DENSE_SHARE * product.shape[0] * n
            parts.append(
                (_dense_block if dense else _neighbour_block)(product, lo, norms, k, shrink)
            )
            advance(1)
    rows, cols, vals = (np.concatenate(p) for p in zip(*parts, strict=True))
    return sp.csr_matrix((vals, (rows, cols)), shape=(n, n))


def _pair_blocks(xt: sp.csr_matrix) -> list[int]:
    """Column boundaries such that each block's co-occurring pairs stay near the budget:
    column j's pairs are at most the summed lengths of the rows of x it occurs in."""
    n = xt.shape[0]
    lengths = np.bincount(xt.indices, minlength=xt.shape[1]).astype(np.float64)
    ones = sp.csr_matrix((np.ones(len(xt.data)), xt.indices, xt.indptr), shape=xt.shape)
    total = np.cumsum(np.minimum(ones @ lengths, n))
    cuts = np.searchsorted(total, np.arange(_BLOCK_PAIRS, total[-1], _BLOCK_PAIRS)) + 1
    return sorted({0, n, *(int(c) for c in cuts if c < n)})


def _neighbour_block(
    product: sp.csr_matrix, lo: int, norms: np.ndarray, k: int, shrink: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, similarities) of the top-``k`` neighbours of the block's columns, from
    their co-occurrences ``product`` (block x all) with every column."""
    product = product.tocsr()
    product.sort_indices()  # ties go to the lower column: the first in each row
    rows = np.repeat(np.arange(lo, lo + product.shape[0]), np.diff(product.indptr))
    cols = product.indices
    vals = product.data / (norms[rows] * norms[cols] + shrink + 1e-12)
    keep = (vals > 0) & (cols != rows)
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    take = top_per_row(np.bincount(rows - lo, minlength=product.shape[0]), vals, k)
    return rows[take], cols[take], vals[take]


def top_per_row(counts: np.ndarray, vals: np.ndarray, k: int) -> np.ndarray:
    """Mask of the ``k`` largest ``vals`` of each row, the first of equal ones taken; ``vals``
    holds the rows one after another, ``counts[r]`` values for row r."""
    take = np.repeat(counts <= k, counts)  # rows with at most k values keep them all
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    crowded = np.flatnonzero(counts > k)
    # longer rows are cut in groups of similar length, padded to the group's width: a
    # row-wise partition over (rows x width) arrays stays linear in the values
    width = 1 << np.ceil(np.log2(counts[crowded])).astype(np.int64)
    for w in np.unique(width):
        group = crowded[width == w]
        real = np.arange(w) < counts[group, None]
        pos = np.where(real, starts[group, None] + np.arange(w), 0)
        take[pos[_top_of_rows(np.where(real, vals[pos], -np.inf), k)]] = True
    return take


def _top_of_rows(v: np.ndarray, k: int) -> np.ndarray:
    """Mask of each row's ``k`` largest values (of equal ones the leftmost)."""
    w = v.shape[1]
    if k >= w:
        return np.ones(v.shape, dtype=bool)
    kth = np.partition(v, w - k, axis=1)[:, w - k, None]
    above, tied = v > kth, v == kth
    return above | (tied & (np.cumsum(tied, axis=1) <= k - above.sum(axis=1, keepdims=True)))


def _dense_block(
    product: sp.csr_matrix, lo: int, norms: np.ndarray, k: int, shrink: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``_neighbour_block`` for a block that co-occurs with most of the catalogue: the same
    similarities and choice, cut from a dense (block x all) array."""
    sim = product.toarray()
    sim /= np.outer(norms[lo : lo + len(sim)], norms) + shrink + 1e-12
    sim[np.arange(len(sim)), np.arange(lo, lo + len(sim))] = 0.0
    rows, cols = np.nonzero(_top_of_rows(sim, k) & (sim > 0))
    return rows + lo, cols, sim[rows, cols]


def truncate_neighbours(sim: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """``cosine_neighbours(x, k, shrink)`` from its result at a larger k (same tie rule)."""
    sim = sim.sorted_indices()  # a copy: the larger fit stays as it is
    counts = np.diff(sim.indptr)
    take = top_per_row(counts, sim.data, k)
    indptr = np.r_[0, np.cumsum(np.minimum(counts, k))]  # every row keeps min(count, k)
    return sp.csr_matrix((sim.data[take], sim.indices[take], indptr), shape=sim.shape)


class KNNConfig(HistoryConfig):
    k: int = Field(100, ge=1, description="neighbours kept per item (or user)")
    shrink: float = Field(10.0, ge=0, description="shrinkage of the cosine for rare pairs")


class ItemKNN(Recommender):
    """score(u, j) = sum over items i in u's history of sim(j, i), j's top-k neighbours only."""

    name = "itemknn"
    config_class = KNNConfig
    # largest k first: each smaller k is derived from it (``derive``), not refitted
    search_space = {"k": [400, 200, 100, 50], "shrink": [0.0, 10.0, 50.0]}
    # scoring-only (the history's weights): tried on each fit without refitting
    score_space = {"half_life": [None, 20.0, 5.0, 2.0]}
    config: KNNConfig

    def _fit(self, train: TrainData) -> None:
        c = self.config
        x = train.weights if c.weighting == "events" else train.matrix
        self.sim_ = cosine_neighbours(x, c.k, c.shrink)

    def derives(self, params: dict[str, Any]) -> bool:
        """Whether ``derive`` can give the setting ``params`` from this fit: a k no larger,
        the other fitting parameters the same (tuning fits each shrink once, largest k)."""
        other = self.config.model_copy(update=params)
        fitting = set(KNNConfig.model_fields) - {"k", *self.score_space}
        return other.k <= self.config.k and all(
            getattr(other, f) == getattr(self.config, f) for f in fitting
        )

    def derive(self, params: dict[str, Any]) -> ItemKNN:
        """This fit at the smaller k of ``params`` (its first k neighbours): equal to a fit."""
        other = type(self)(**params)
        other._adopt_history(self)
        other.sim_ = truncate_neighbours(self.sim_, other.config.k)
        return other

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
