"""Exact top-k selection over dense score rows, fast enough for batch jobs over 100k items;
and the types lists come in (``Recommendations``, ``TopK``).

The order is the protocol's: higher score first, ties to the lower column (what a stable
argsort of ``-scores`` gives). A full argsort is O(n log n) per row; here each row's k + 1
best are selected first (torch's ``topk`` when installed, numpy's ``argpartition`` otherwise)
and only rows whose k-th and (k+1)-th scores tie, or that run out of scorable items, fall
back to the stable sort, so the answer never depends on how ties were selected. Excluded
entries (seen items) come as a sparse matrix, so the model's scores are copied once.
"""

from __future__ import annotations

import importlib.util
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

_HAS_TORCH = importlib.util.find_spec("torch") is not None


class Recommendations(NamedTuple):
    """Per user: item ids and scores, best first (unpacks as docs/design.md's tuple)."""

    item_ids: list[list[str]]
    scores: list[np.ndarray]


class TopK(NamedTuple):
    """Flat top-k lists: ``row`` indexes the requested users, ``sources`` (when the model
    has parts) names the part that proposed each item."""

    row: np.ndarray
    item_idx: np.ndarray
    score: np.ndarray
    sources: list[str] | None


def top_k(
    scores: np.ndarray, k: int, excluded: sp.csr_matrix | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Flat (row, column) pairs of each row's ``k`` best scores, rows in order and best
    first within a row. ``excluded`` (same shape, any stored entry) is never returned; NaN
    scores rank as -inf (after every finite score, before nothing). ``scores`` is not
    modified."""
    scores = np.asarray(scores)
    n_rows, n = scores.shape
    if n_rows == 0 or k <= 0 or n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if k + 1 >= n:
        return _stable(scores, np.arange(n_rows), k, excluded)
    key = _scorable(scores)  # a copy: NaN -> -inf, excluded -> -inf
    if excluded is not None:
        key[_rows_of(excluded), excluded.indices] = -np.inf
    vals, cols = _select(key, k + 1)
    del key
    # best first, ties to the lower column, within each row's k + 1 candidates
    order = np.lexsort((cols, -vals), axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    cols = np.take_along_axis(cols, order, axis=1)
    # the k best are unique when strictly above the rest and all finite or -inf scores
    # that are not excluded: rows with a tie at the boundary or a -inf among them are
    # sorted in full
    clean = (vals[:, k - 1] > vals[:, k]) & (vals[:, k - 1] > -np.inf)
    rows = np.repeat(np.flatnonzero(clean), k)
    out_cols = cols[clean, :k].ravel()
    if clean.all():
        return rows, out_cols
    dirty = np.flatnonzero(~clean)
    r2, c2 = _stable(scores[dirty], dirty, k, None if excluded is None else excluded[dirty])
    rows, out_cols = np.concatenate([rows, r2]), np.concatenate([out_cols, c2])
    order = np.argsort(rows, kind="stable")
    return rows[order], out_cols[order]


def _rows_of(m: sp.csr_matrix) -> np.ndarray:
    return np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))


def _scorable(scores: np.ndarray) -> np.ndarray:
    """A float copy of ``scores`` with NaN as -inf: a NaN check and numpy's copy when there
    is none (the usual case, cheaper than any fused pass), else one torch pass."""
    if not np.issubdtype(scores.dtype, np.floating):
        return scores.astype(np.float64)
    if not np.isnan(scores).any():  # the usual case: a plain copy is the cheapest pass
        return scores.copy()
    if _HAS_TORCH and scores.flags.writeable:  # torch wraps only writable arrays
        import torch

        t = torch.from_numpy(np.ascontiguousarray(scores))
        return torch.nan_to_num(t, nan=-np.inf, posinf=np.inf, neginf=-np.inf).numpy()
    return np.where(np.isnan(scores), -np.inf, scores)


def _select(key: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Some ``m`` largest values of each row and their columns (ties chosen arbitrarily)."""
    if _HAS_TORCH:
        import torch

        vals, cols = torch.topk(torch.from_numpy(key), m, dim=1)
        return vals.numpy(), cols.numpy().astype(np.int64)
    cols = np.argpartition(-key, m - 1, axis=1)[:, :m]
    return np.take_along_axis(key, cols, axis=1), cols.astype(np.int64)


def _stable(
    scores: np.ndarray, row_ids: np.ndarray, k: int, excluded: sp.csr_matrix | None
) -> tuple[np.ndarray, np.ndarray]:
    """The reference: a stable sort of each row, NaN as -inf, excluded entries dropped."""
    rows, cols = [], []
    for n, (r, row) in enumerate(zip(row_ids, scores, strict=True)):
        row = np.where(np.isnan(row), -np.inf, row.astype(np.float64))
        if excluded is not None:
            row[excluded.indices[excluded.indptr[n] : excluded.indptr[n + 1]]] = np.nan
        o = np.argsort(-row, kind="stable")
        o = o[~np.isnan(row[o])][:k]
        rows.append(np.full(len(o), r, np.int64))
        cols.append(o.astype(np.int64))
    return np.concatenate(rows), np.concatenate(cols)
