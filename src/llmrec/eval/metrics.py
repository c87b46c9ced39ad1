"""Ranking and metrics, vectorised over users. Models never see this module; eval/ calls it.

Conventions (docs/design.md): ranks are 1-based; score ties go to the lower item index (= lower id);
NaN scores rank after every real score; excluded items rank after everything and never appear in
a top-K list; a target item is never excluded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

_CHUNK = 1024  # users ranked at once: bounds memory at CHUNK x n_candidates


@dataclass(frozen=True)
class Ranking:
    """Per user: the top-``kmax`` candidate positions (-1 padded) and each target's rank."""

    topk: np.ndarray  # (n_users, kmax) int, candidate positions, -1 where the list is short
    target_ranks: np.ndarray  # (n_users, max_targets) int, 1-based; 0 for padding
    n_targets: np.ndarray  # (n_users,) int


def rank(
    scores: np.ndarray,
    targets: np.ndarray,
    exclude: sp.csr_matrix | np.ndarray | None,
    kmax: int,
    tie_order: np.ndarray | None = None,
) -> Ranking:
    """Rank every candidate per user (row) of ``scores``.

    ``targets``: (n, t) candidate positions, -1 padded. ``exclude``: (n, c) boolean.
    ``tie_order``: a permutation of candidate positions; tied scores go to the one earlier in
    it (default: the lower position, i.e. the lower id).
    """
    if tie_order is not None:
        inverse = np.empty_like(tie_order)
        inverse[tie_order] = np.arange(len(tie_order))
        t = np.asarray(targets, dtype=np.int64).reshape(len(scores), -1)
        ex = None if exclude is None else exclude[:, tie_order]
        r = rank(scores[:, tie_order], np.where(t >= 0, inverse[np.maximum(t, 0)], -1), ex, kmax)
        topk = np.where(r.topk >= 0, tie_order[np.maximum(r.topk, 0)], -1)
        return Ranking(topk, r.target_ranks, r.n_targets)
    n, c = scores.shape
    targets = np.asarray(targets, dtype=np.int64).reshape(n, -1)
    topk = np.full((n, min(kmax, c)), -1, dtype=np.int64)
    ranks = np.zeros(targets.shape, dtype=np.int64)
    for lo in range(0, n, _CHUNK):
        hi = min(lo + _CHUNK, n)
        s = -np.asarray(scores[lo:hi])  # float32 stays float32: the order is the same
        if s.dtype != np.float32:
            s = s.astype(np.float64)
        s[np.isnan(s)] = np.inf
        tgt = targets[lo:hi]
        valid_t = tgt >= 0
        rows = np.broadcast_to(np.arange(hi - lo)[:, None], tgt.shape)
        if exclude is not None:
            ex = exclude[lo:hi]
            ex = ex.toarray() if sp.issparse(ex) else np.array(ex, dtype=bool)
            ex = ex.astype(bool)
            ex[rows[valid_t], tgt[valid_t]] = False
            s[ex] = np.nan  # argsort puts NaN last
        ranks[lo:hi] = np.where(valid_t, _target_ranks(s, np.where(valid_t, tgt, 0)), 0)
        if topk.shape[1]:  # kmax = 0: only the targets' ranks (what tuning reads)
            n_valid = np.full(hi - lo, c) - (ex.sum(axis=1) if exclude is not None else 0)
            head = _head(s, topk.shape[1])
            short = np.arange(topk.shape[1])[None, :] >= n_valid[:, None]
            topk[lo:hi] = np.where(short, -1, head)
    return Ranking(topk, ranks, (targets >= 0).sum(axis=1))


# Neither needs a full sort of the catalogue (n log n per user, which dominated evaluation
# and tuning on big catalogues): both give exactly what a stable argsort of ``s`` would.


def _target_ranks(s: np.ndarray, tgt: np.ndarray) -> np.ndarray:
    """1 + the candidates before each target in the stable order of ``s`` (ascending, ties
    by position, NaN last): those strictly smaller, and the equal ones at lower positions
    (counted only in rows where something ties with the target)."""
    out = np.empty(tgt.shape, dtype=np.int64)
    for j in range(tgt.shape[1]):
        t = tgt[:, j : j + 1]
        st = np.take_along_axis(s, t, axis=1)
        out[:, j] = 1 + (s < st).sum(axis=1)
        eq = s == st
        rows = np.flatnonzero(eq.sum(axis=1) > 1)
        if len(rows):
            before = np.arange(s.shape[1])[None, :] < t[rows]
            out[rows, j] += (eq[rows] & before).sum(axis=1)
    return out


def _head(s: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` positions of the stable ascending order of ``s`` (NaN last)."""
    n, c = s.shape
    if k >= c:
        return np.argsort(s, axis=1, kind="stable")[:, :k]
    kth = np.partition(s, k - 1, axis=1)[:, k - 1 : k]  # NaN sorts last here too
    below, tied = s < kth, s == kth
    nan_rows = np.flatnonzero(np.isnan(kth[:, 0]))  # fewer than k real values
    if len(nan_rows):
        gap = np.isnan(s[nan_rows])
        below[nan_rows], tied[nan_rows] = ~gap, gap
    # the k-th value's ties fill the rest, lowest positions first; a cumulative count only
    # in rows with more ties than places
    need = k - below.sum(axis=1)
    take = below | tied
    over = np.flatnonzero(tied.sum(axis=1) > need)
    if len(over):
        t = tied[over]
        take[over] &= ~(t & (np.cumsum(t, axis=1, dtype=np.int32) > need[over, None]))
    idx = np.nonzero(take)[1].reshape(n, k)  # ascending positions per row
    order = np.argsort(np.take_along_axis(s, idx, axis=1), axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1)


def accuracy(ranking: Ranking, k: int) -> dict[str, np.ndarray]:
    """Per-user Recall@k, NDCG@k, MRR@k (with one target: Recall = HR)."""
    r = ranking.target_ranks
    hit = (r > 0) & (r <= k)
    nt = np.maximum(ranking.n_targets, 1)
    recall = hit.sum(axis=1) / nt
    gains = np.where(hit, 1.0 / np.log2(np.maximum(r, 1) + 1.0), 0.0)
    ideal = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))
    ndcg = gains.sum(axis=1) / ideal[np.minimum(nt, k) - 1]
    best = np.where(hit, r, np.iinfo(np.int64).max).min(axis=1)
    mrr = np.where(hit.any(axis=1), 1.0 / np.maximum(best, 1), 0.0)
    return {f"recall@{k}": recall, f"ndcg@{k}": ndcg, f"mrr@{k}": mrr}


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of how often each candidate is recommended (0 = even, 1 = one item)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = len(x), x.sum()
    if n == 0 or total == 0:
        return 0.0
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * x).sum() / (n * total))


def catalogue(
    topk: np.ndarray,
    k: int,
    popularity: np.ndarray,
    n_train_users: int,
    item_vectors: np.ndarray | None = None,
) -> dict[str, float]:
    """Coverage, novelty, intra-list diversity, average popularity and Gini of the top-k lists.

    ``popularity``: training users per candidate. Novelty is the mean self-information
    -log2(pop / n_train_users), pop clipped at 1 so never-seen items stay finite.
    ``item_vectors`` (candidates x d) enable diversity: 1 - mean pairwise cosine in a list.
    """
    lists = topk[:, :k]
    valid = lists >= 0
    flat = lists[valid]
    c = len(popularity)
    counts = np.bincount(flat, minlength=c)
    pop = np.asarray(popularity, dtype=np.float64)
    info = -np.log2(np.maximum(pop, 1.0) / max(n_train_users, 1))
    out = {
        f"coverage@{k}": float((counts > 0).sum() / c) if c else 0.0,
        f"novelty@{k}": float(info[flat].mean()) if flat.size else 0.0,
        f"arp@{k}": float(pop[flat].mean()) if flat.size else 0.0,
        f"gini@{k}": gini(counts),
    }
    if item_vectors is not None:
        v = np.asarray(item_vectors, dtype=np.float64)
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        v = np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)
        vl = np.where(valid[..., None], v[np.where(valid, lists, 0)], 0.0)  # (n, k, d)
        length = valid.sum(axis=1)
        summed = vl.sum(axis=1)
        self_sim = (vl**2).sum(axis=(1, 2))
        pair = ((summed**2).sum(axis=1) - self_sim) / np.maximum(length * (length - 1), 1)
        ok = length >= 2
        out[f"diversity@{k}"] = float((1.0 - pair[ok]).mean()) if ok.any() else 0.0
    return out


def candidate_ndcg10(pred: np.ndarray, cand: np.ndarray, label: np.ndarray) -> float:
    """Mean NDCG@10 over every row (user) of ``cand`` when its candidates are ordered by
    ``pred`` (given for the valid entries of ``cand``, row-major) and ``label`` marks the
    held-out items; a user whose item is not among the candidates counts 0. Ties go to the
    earlier candidate (merge order), as in ``rank``."""
    rows, cols = np.nonzero(cand >= 0)
    scores = np.full(cand.shape, -np.inf)
    scores[rows, cols] = pred
    t_rows, t_cols = rows[label > 0], cols[label > 0]
    slot = np.arange(len(t_rows)) - np.searchsorted(t_rows, t_rows)  # k-th target of its row
    targets = np.full((len(cand), int(slot.max()) + 1 if len(slot) else 1), -1, np.int64)
    targets[t_rows, slot] = t_cols
    ranking = rank(scores, targets, cand < 0, 10)
    return float(accuracy(ranking, 10)["ndcg@10"].mean()) if len(cand) else 0.0
