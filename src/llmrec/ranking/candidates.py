"""Stage one: every retriever ranks the catalogue; their lists are merged to N candidates."""

from __future__ import annotations

import numpy as np


def quantise(scores: np.ndarray, digits: int = 5) -> np.ndarray:
    """Scores rounded to ``digits`` significant digits of each row's largest magnitude.

    Retrievers often tie (items with the same text, same counts); float noise of another
    batch size (1e-7) would break those ties differently. Rounded, they tie exactly and the
    item index decides, so a user's candidates never depend on who else is in the batch.
    """
    s = np.nan_to_num(scores.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    top = np.abs(s).max(axis=1, keepdims=True)
    scale = 10.0 ** (digits - 1 - np.floor(np.log10(np.where(top > 0, top, 1.0))))
    return np.round(s * scale) / scale


def ranks_of(scores: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    """1-based rank of every item per row (ties: lower index first); excluded items rank last."""
    s = np.where(excluded, -np.inf, np.nan_to_num(scores, nan=-np.inf, neginf=-np.inf))
    order = np.argsort(-s, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, s.shape[1] + 1)[None, :], axis=1)
    return ranks


def merge(ranks: list[np.ndarray], excluded: np.ndarray, n: int) -> np.ndarray:
    """(users, n) candidate item indices: items ordered by their best rank in any retriever
    (so each retriever's top items get in, round-robin), ties broken by reciprocal-rank
    fusion. Excluded items (the user's history) are never candidates; rows are padded with
    -1 when fewer items remain."""
    stacked = np.stack(ranks).astype(np.float64)
    best = stacked.min(axis=0)
    rrf = (1.0 / (60.0 + stacked)).sum(axis=0)  # < len(ranks) / 60
    key = best - 0.5 * rrf / (len(ranks) / 60.0)  # the fusion only orders equal best ranks
    key[excluded] = np.inf
    n = min(n, key.shape[1])
    top = np.argsort(key, axis=1, kind="stable")[:, :n]  # stable: equal keys by item index
    valid = np.isfinite(np.take_along_axis(key, top, 1))
    return np.where(valid, top, -1)
