"""Exact top-k selection over dense score rows, fast enough for batch jobs over 100k items.

The order is the protocol's: higher score first, ties to the lower column (what a stable
argsort of ``-scores`` gives). A full argsort is O(n log n) per row; here each row's k + 1
best are selected first (torch's ``topk`` when installed, numpy's ``argpartition`` otherwise)
and only rows whose k-th and (k+1)-th scores tie, or that run out of scorable items, fall
back to the stable sort, so the answer never depends on how ties were selected.
"""

from __future__ import annotations

import importlib.util

import numpy as np

_HAS_TORCH = importlib.util.find_spec("torch") is not None


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat (row, column) pairs of each row's ``k`` best scores, rows in order and best
    first within a row. NaN marks an excluded entry (never returned); -inf is a score
    (returned after every finite one when a row has fewer than ``k`` finite scores)."""
    scores = np.asarray(scores)
    n_rows, n = scores.shape
    if n_rows == 0 or k <= 0 or n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if k + 1 >= n:
        return _stable(scores, np.arange(n_rows), k)
    key = np.where(np.isnan(scores), -np.inf, scores)
    vals, cols = _select(key, k + 1)
    # best first, ties to the lower column, within each row's k + 1 candidates
    order = np.lexsort((cols, -vals), axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    cols = np.take_along_axis(cols, order, axis=1)
    # the k best are unique when strictly above the rest and all scorable
    clean = (vals[:, k - 1] > vals[:, k]) & (vals[:, k - 1] > -np.inf)
    rows = np.repeat(np.flatnonzero(clean), k)
    out_cols = cols[clean, :k].ravel()
    if clean.all():
        return rows, out_cols
    r2, c2 = _stable(scores[~clean], np.flatnonzero(~clean), k)
    rows, out_cols = np.concatenate([rows, r2]), np.concatenate([out_cols, c2])
    order = np.argsort(rows, kind="stable")
    return rows[order], out_cols[order]


def _select(key: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Some ``m`` largest values of each row and their columns (ties chosen arbitrarily)."""
    if _HAS_TORCH:
        import torch

        vals, cols = torch.topk(torch.from_numpy(np.ascontiguousarray(key)), m, dim=1)
        return vals.numpy(), cols.numpy().astype(np.int64)
    cols = np.argpartition(-key, m - 1, axis=1)[:, :m]
    return np.take_along_axis(key, cols, axis=1), cols.astype(np.int64)


def _stable(scores: np.ndarray, row_ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference: a stable sort of each row, NaN dropped."""
    rows, cols = [], []
    for r, row in zip(row_ids, scores, strict=True):
        o = np.argsort(-row, kind="stable")
        o = o[~np.isnan(row[o])][:k]
        rows.append(np.full(len(o), r, np.int64))
        cols.append(o.astype(np.int64))
    return np.concatenate(rows), np.concatenate(cols)
