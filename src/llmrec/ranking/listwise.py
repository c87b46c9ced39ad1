"""A linear listwise ranker: softmax over each user's candidates, the held-out item as the
one positive (cross-entropy, L2). Few parameters, so it learns a sound blend of the
retrievers from a few hundred users; the boosted trees then start from its scores and only
learn the corrections the data supports (cross-validation may choose zero trees)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize


@dataclass(frozen=True)
class Listwise:
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray

    def predict(self, x: np.ndarray) -> np.ndarray:
        return _standardise(x, self.mean, self.scale) @ self.weights


def _standardise(x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.nan_to_num((x.astype(np.float64) - mean) / scale, nan=0.0, posinf=0.0, neginf=0.0)


def fit_listwise(x: np.ndarray, qid: np.ndarray, label: np.ndarray, l2: float) -> Listwise:
    """``qid`` is non-decreasing (rows grouped by query); queries without a positive are
    ignored. Loss per query: log-sum-exp of its scores minus the positive's score."""
    finite = np.isfinite(x)
    n = np.maximum(finite.sum(axis=0), 1)
    vals = np.where(finite, x, 0.0).astype(np.float64)
    mean = vals.sum(axis=0) / n
    var = (np.where(finite, x - mean, 0.0) ** 2).sum(axis=0) / n
    scale = np.where(var > 0, np.sqrt(var), 1.0)  # a constant or missing feature stays 0
    keep = queries_with_positive(qid, label)
    xs = _standardise(x[keep], mean, scale)
    q, y = qid[keep], label[keep] > 0
    if not y.any():
        return Listwise(mean, scale, np.zeros(x.shape[1]))
    sizes = group_sizes(q)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    n_q = len(starts)
    x_pos = xs[y].sum(axis=0)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        s = xs @ w
        m = np.maximum.reduceat(s, starts)
        e = np.exp(s - np.repeat(m, sizes))
        z = np.add.reduceat(e, starts)
        lse = np.log(z) + m
        p = e / np.repeat(z, sizes)
        value = (lse.sum() - s[y].sum()) / n_q + 0.5 * l2 * w @ w
        grad = (p @ xs - x_pos) / n_q + l2 * w
        return float(value), grad

    res = minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B")
    return Listwise(mean, scale, res.x)


def group_sizes(qid: np.ndarray) -> np.ndarray:
    """Sizes of consecutive runs of equal query ids (rows are grouped by query)."""
    return np.diff(np.flatnonzero(np.r_[True, qid[1:] != qid[:-1], True]))


def queries_with_positive(qid: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Rows of queries with a positive: the others carry no ranking signal."""
    pos = np.zeros(int(qid.max()) + 1 if len(qid) else 0, dtype=bool)
    pos[qid[label > 0]] = True
    return pos[qid]
