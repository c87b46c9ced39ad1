"""Stage one: every retriever ranks the catalogue; their lists are merged to N candidates.

On a big catalogue a full sort per retriever and user dominated an uncached list (~29 ms of
~80 ms at 100k items), while only each retriever's head matters: the merge takes the N best
by the best rank in any retriever, and a rank far down a list says little more than "far".
``ranks_of(..., cap)`` ranks the ``cap`` best exactly and gives the rest ``cap + 1``.

``Ranks`` holds a block's ranks as the ranker uses them: dense users x items arrays when
exact, and when capped only each retriever's top ``cap`` items (users x cap), from which the
merge, the candidates' ranks and the best rank of every item are computed — the same
numbers as from dense capped ranks (tests), without users x items arrays per retriever."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# catalogues up to this many items rank exactly; above it each retriever's top RANK_CAP do
EXACT_RANKS_UP_TO = 20_000
RANK_CAP = 2_000


def rank_cap_for(n_items: int) -> int:
    """The cap the ranker fits with at this catalogue size (0: exact over the catalogue)."""
    return 0 if n_items <= EXACT_RANKS_UP_TO else RANK_CAP


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


def smallest(a: np.ndarray, n: int) -> np.ndarray:
    """(rows, n) column indices of each row's ``n`` smallest values in ascending order, ties
    to the lower index: the first ``n`` columns of a stable argsort, in O(columns) per row
    plus n log n. ``a`` holds no NaN."""
    rows, cols = a.shape
    if n >= cols:
        return np.argsort(a, axis=1, kind="stable")
    kth = np.partition(a, n - 1, axis=1)[:, n - 1 : n]  # each row's n-th smallest value
    below = a < kth
    tied = a == kth
    # of the values equal to the n-th, the lowest indices fill the row up to n
    room = n - below.sum(axis=1, keepdims=True)
    chosen = below | (tied & (np.cumsum(tied, axis=1) <= room))
    idx = np.nonzero(chosen)[1].reshape(rows, n)  # ascending index within each row
    order = np.argsort(np.take_along_axis(a, idx, 1), axis=1, kind="stable")
    return np.take_along_axis(idx, order, 1)


def ranks_of(scores: np.ndarray, excluded: np.ndarray, cap: int = 0) -> np.ndarray:
    """1-based rank of every item per row (ties: lower index first); excluded items rank last.
    ``cap`` > 0: only the ``cap`` best are ranked, every other item gets ``cap + 1``."""
    s = _masked(scores, excluded)
    n_items = s.shape[1]
    if cap <= 0 or cap >= n_items:
        order = np.argsort(-s, axis=1, kind="stable")
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(1, n_items + 1)[None, :], axis=1)
        return ranks
    top = smallest(-s, cap)
    ranks = np.full(s.shape, cap + 1, dtype=np.int64)
    np.put_along_axis(ranks, top, np.arange(1, cap + 1)[None, :], axis=1)
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
    top = smallest(key, n)  # equal keys by item index
    valid = np.isfinite(np.take_along_axis(key, top, 1))
    return np.where(valid, top, -1)


def _masked(scores: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    return np.where(excluded, -np.inf, np.nan_to_num(scores, nan=-np.inf, neginf=-np.inf))


@dataclass
class Ranks:
    """Every retriever's ranks for a block of users: ``dense`` (users x items each) when
    exact, or ``tops`` (users x cap item indices each, best first) when capped: an item
    outside a retriever's top ranks ``cap + 1`` there."""

    n_items: int
    cap: int
    dense: list[np.ndarray] | None = None
    tops: list[np.ndarray] | None = None
    # per top: its (row, item) keys sorted and their positions, built at the first ``at``
    _index: list[tuple[np.ndarray, np.ndarray]] | None = field(default=None, repr=False)

    @classmethod
    def of(cls, scores: list[np.ndarray], excluded: np.ndarray, cap: int = 0) -> Ranks:
        """``ranks_of`` for each retriever's scores (excluded items rank last)."""
        n_items = excluded.shape[1]
        if cap <= 0 or cap >= n_items:
            return cls(n_items, 0, dense=[ranks_of(s, excluded) for s in scores])
        return cls(n_items, cap, tops=[smallest(-_masked(s, excluded), cap) for s in scores])

    def at(self, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(retrievers, pairs) rank of each (row, item) pair in each retriever."""
        if self.dense is not None:
            return np.stack([d[rows, items] for d in self.dense])
        assert self.tops is not None
        if self._index is None:
            self._index = []
            for top in self.tops:
                keys = (np.arange(len(top))[:, None] * self.n_items + top).ravel()
                order = np.argsort(keys)
                self._index.append((keys[order], order))
        out = np.full((len(self.tops), len(rows)), self.cap + 1, dtype=np.int64)
        query = rows.astype(np.int64) * self.n_items + items
        for r, (keys, order) in enumerate(self._index):
            pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
            hit = keys[pos] == query
            out[r, hit] = order[pos[hit]] % self.cap + 1  # column in the top = rank - 1
        return out

    def best(self) -> tuple[np.ndarray, np.ndarray]:
        """(users x items) best rank of every item in any retriever, and that retriever (the
        first on ties)."""
        if self.dense is not None:
            stacked = np.stack(self.dense)
            return stacked.min(axis=0), stacked.argmin(axis=0)
        assert self.tops is not None
        users = len(self.tops[0])
        best = np.full((users, self.n_items), self.cap + 1, dtype=np.int64)
        source = np.zeros((users, self.n_items), dtype=np.int64)
        ranks = np.arange(1, self.cap + 1)[None, :]
        for r, top in enumerate(self.tops):
            here = np.take_along_axis(best, top, 1)
            better = ranks < here  # strictly: an earlier retriever keeps a tie
            rows = np.nonzero(better)[0]
            best[rows, top[better]] = np.broadcast_to(ranks, top.shape)[better]
            source[rows, top[better]] = r
        return best, source

    def merge(self, excluded: np.ndarray, n: int) -> np.ndarray:
        """``merge`` of these ranks: the same candidates in the same order."""
        if self.dense is not None:
            return merge(self.dense, excluded, n)
        assert self.tops is not None
        return _merge_tops(self.tops, self.cap, excluded, n)


def _merge_tops(tops: list[np.ndarray], cap: int, excluded: np.ndarray, n: int) -> np.ndarray:
    """``merge`` over the union of the retrievers' tops. An item in no top has the key every
    such item has, above any item of the union: they come after, by item index."""
    n_retr, (users, n_items) = len(tops), excluded.shape
    n = min(n, n_items)
    row = np.tile(np.repeat(np.arange(users), cap), n_retr)
    item = np.concatenate([t.ravel() for t in tops])
    rank = np.tile(np.arange(1, cap + 1), users * n_retr)
    retr = np.repeat(np.arange(n_retr), users * cap)
    order = np.argsort(row * np.int64(n_items) + item, kind="stable")  # retrievers in order
    row, item, rank, retr = row[order], item[order], rank[order], retr[order]
    first = np.r_[True, (row[1:] != row[:-1]) | (item[1:] != item[:-1])]
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    g_row, g_item = row[starts], item[starts]
    # the dense merge's arithmetic, term for term and in retriever order (equal keys tie)
    terms = np.full((len(starts), n_retr), 1.0 / (60.0 + (cap + 1)))
    terms[group, retr] = 1.0 / (60.0 + rank.astype(np.float64))
    rrf = terms[:, 0].copy()
    for r in range(1, n_retr):
        rrf = rrf + terms[:, r]
    best = np.minimum.reduceat(rank, starts).astype(np.float64)
    key = best - 0.5 * rrf / (n_retr / 60.0)
    keep = ~excluded[g_row, g_item]
    g_row, g_item, key = g_row[keep], g_item[keep], key[keep]
    order = np.lexsort((g_item, key, g_row))
    g_row, g_item = g_row[order], g_item[order]
    bounds = np.searchsorted(g_row, np.arange(users + 1))
    out = np.full((users, n), -1, dtype=np.int64)
    for u in range(users):
        got = g_item[bounds[u] : min(bounds[u + 1], bounds[u] + n)]
        out[u, : len(got)] = got
        if len(got) < n:  # the union ran out: items in no top, by index, not excluded
            rest = ~excluded[u]
            rest[got] = False
            more = np.flatnonzero(rest)[: n - len(got)]
            out[u, len(got) : len(got) + len(more)] = more
    return out
