"""What a model is fitted on: the training interactions over fixed user and item indices."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from llmrec.data import columns as C
from llmrec.data.events import EventRules
from llmrec.data.ids import IdMap


@dataclass(frozen=True)
class TrainData:
    """Training interactions indexed densely; item index order is the protocol's id order.

    ``matrix`` is binary (implicit feedback: every interaction counts once per user-item pair);
    ``recency`` has the same pattern, valued 1 for the user's latest item, 2 for the one before...
    (by each pair's last interaction), so models can weigh recent history more;
    ``strength`` has the same pattern again, valued by what the pair's events mean
    (``data.events``: the weight of its strongest event, e.g. view 1, purchase 5, a rating its
    value, a pair with only dislikes negative); models with ``weighting="events"`` use it.
    ``log`` keeps every event, sorted by (user, timestamp, item), for sequence-aware models.
    ``items``/``users`` are the side tables aligned to the indices (rows may be missing values).
    """

    users: IdMap
    items: IdMap
    matrix: sp.csr_matrix
    recency: sp.csr_matrix
    log: pd.DataFrame  # columns user_idx, item_idx, timestamp, event, value
    item_table: pd.DataFrame | None = None
    user_table: pd.DataFrame | None = None
    kg: pd.DataFrame | None = None  # head, relation, tail (text facts for items)
    item_entity: pd.DataFrame | None = None
    strength: sp.csr_matrix | None = None  # None: every pair weighs 1
    rules: EventRules = EventRules()

    @property
    def weights(self) -> sp.csr_matrix:
        """The pair weights (``strength``), or the binary matrix when the events carry none."""
        return self.matrix if self.strength is None else self.strength

    @property
    def weighted(self) -> bool:
        """Whether the pairs weigh differently (else ``weighting="events"`` changes nothing)."""
        s = self.strength
        return s is not None and s.nnz > 0 and bool(np.ptp(s.data) > 0)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @classmethod
    def build(
        cls,
        log: pd.DataFrame,
        users: IdMap,
        items: IdMap,
        item_table: pd.DataFrame | None = None,
        user_table: pd.DataFrame | None = None,
        kg: pd.DataFrame | None = None,
        item_entity: pd.DataFrame | None = None,
        rules: EventRules | None = None,
    ) -> TrainData:
        """``log`` has user_idx/item_idx columns already (see ``data.splits``); its
        ``event``/``value`` columns, read with ``rules``, give the pair weights."""
        rules = rules or EventRules()
        u = log["user_idx"].to_numpy(np.int64)
        i = log["item_idx"].to_numpy(np.int64)
        order = log_order(u, log[C.TIMESTAMP].to_numpy(np.int64), i)
        if order is not None:
            log, u, i = log.iloc[order], u[order], i[order]
        log = log.reset_index(drop=True)
        shape = (len(users), len(items))
        # one stable sort by (user, item) groups each pair's events in log order: its last
        # event is the group's last row, and the groups come in CSR order
        key = u * max(len(items), 1) + i
        by_pair = np.argsort(key, kind="stable")
        key = key[by_pair]
        new = np.r_[True, key[1:] != key[:-1]] if len(key) else np.zeros(0, bool)
        starts = np.flatnonzero(new)
        last_row = by_pair[np.r_[starts[1:] - 1, len(key) - 1]] if len(key) else starts
        pair_user, pair_item = u[last_row], i[last_row]
        # recency: 1 for the user's pair with the latest last event, 2 for the one before...
        in_time = np.argsort(last_row)  # log order: by user, then time
        rank = np.empty(len(last_row), np.int64)
        rank[in_time] = _rank_from_end(pair_user[in_time])
        indptr = np.r_[0, np.cumsum(np.bincount(pair_user, minlength=shape[0]))]
        indices = pair_item.astype(np.int32)
        recency = sp.csr_matrix((rank.astype(np.float32), indices, indptr), shape=shape)
        matrix = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=shape)
        strength = None
        if C.EVENT in log and len(log):
            value = log[C.VALUE] if C.VALUE in log else np.full(len(log), np.nan)
            w = rules.weights_of(log[C.EVENT], value)[by_pair]
            # per pair, in CSR order: its strongest event's weight (a pair with only
            # negative events keeps the most negative)
            hi, lo = np.maximum.reduceat(w, starts), np.minimum.reduceat(w, starts)
            strength = sp.csr_matrix(
                (np.where(hi > 0, hi, lo).astype(np.float32), indices, indptr), shape=shape
            )
        return cls(
            users, items, matrix, recency, log, item_table, user_table, kg, item_entity,
            strength, rules,
        )  # fmt: skip

    def subset(self, keep_rows: np.ndarray) -> TrainData:
        """Same indices, fewer interactions (used to carve a validation fold out of training)."""
        return self.with_log(self.log[keep_rows])

    def with_log(self, log: pd.DataFrame) -> TrainData:
        """Same indices and side tables over another event log (e.g. training + validation)."""
        return TrainData.build(
            log,
            self.users,
            self.items,
            self.item_table,
            self.user_table,
            self.kg,
            self.item_entity,
            self.rules,
        )


def in_log_order(user: np.ndarray, timestamp: np.ndarray, item: np.ndarray) -> bool:
    """Whether rows are sorted by (user, timestamp, item), the log's order (one linear pass:
    a log cut from a sorted one needs no new sort)."""
    if len(user) < 2:
        return True
    du, dt, di = np.diff(user), np.diff(timestamp), np.diff(item)
    return bool(np.all((du > 0) | ((du == 0) & ((dt > 0) | ((dt == 0) & (di >= 0))))))


def log_order(user: np.ndarray, timestamp: np.ndarray, item: np.ndarray) -> np.ndarray | None:
    """The stable permutation sorting rows by (user, timestamp, item); None when they are
    sorted already. One sort of a packed key where the three fit in 63 bits (timestamps by
    their rank among the distinct ones): several times faster than a lexsort on millions."""
    if in_log_order(user, timestamp, item):
        return None
    if user.min() >= 0 and item.min() >= 0:
        stamps, t_rank = np.unique(timestamp, return_inverse=True)
        n_user, n_time, n_item = int(user.max()) + 1, len(stamps), int(item.max()) + 1
        if n_user * n_time * n_item < 2**63:
            key = (user.astype(np.int64) * n_time + t_rank) * n_item + item
            return np.argsort(key, kind="stable")
    return np.lexsort((item, timestamp, user))


def _rank_from_end(groups: np.ndarray) -> np.ndarray:
    """1 for the last entry of each run of equal values, 2 for the one before... (a
    groupby's descending cumcount + 1 over sorted keys, without pandas' per-call cost)."""
    if not len(groups):
        return np.zeros(0, dtype=np.int64)
    last = np.r_[groups[1:] != groups[:-1], True]
    ends = np.flatnonzero(last)
    run = np.r_[0, np.cumsum(last[:-1])]
    return ends[run] - np.arange(len(groups)) + 1


def splice_segments(
    indptr: np.ndarray,
    arrays: list[np.ndarray],
    replaced: np.ndarray,
    new_indptr: np.ndarray,
    new_arrays: list[np.ndarray],
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Row segments (``indptr`` over ``arrays``: a CSR matrix's rows, each user's events)
    with the rows where ``replaced`` taken from the same layout ``new_indptr`` over
    ``new_arrays`` instead (rows past the old ones are new). Slices are copied in row order,
    no sort: linear in the entries, cheap when few rows change."""
    n_old, n = len(indptr) - 1, len(replaced)
    counts = np.zeros(n, dtype=np.int64)
    counts[:n_old] = np.diff(indptr)
    rows = np.flatnonzero(replaced)
    counts[rows] = new_indptr[rows + 1] - new_indptr[rows]
    pieces: list[list[np.ndarray]] = [[] for _ in arrays]
    prev = 0  # first old row not yet copied
    for r in rows:
        stop = min(int(r), n_old)
        for out, a in zip(pieces, arrays, strict=True):
            out.append(a[indptr[prev] : indptr[stop]])
        prev = min(int(r) + 1, n_old)
        for out, a in zip(pieces, new_arrays, strict=True):
            out.append(a[new_indptr[r] : new_indptr[r + 1]])
    for out, a in zip(pieces, arrays, strict=True):
        out.append(a[indptr[prev] : indptr[n_old]])
    merged = [np.concatenate(p) if p else a[:0] for p, a in zip(pieces, arrays, strict=True)]
    return np.r_[0, np.cumsum(counts)].astype(np.int64), merged


_splices = threading.local()


@contextmanager
def shared_splices() -> Iterator[None]:
    """Inside the block, ``splice_rows`` of the same matrices and rows is done once: nested
    models holding one history matrix (a ranker and its retrievers) splice it once and go
    on sharing it, instead of each copying the whole matrix."""
    outer = getattr(_splices, "memo", None) is None
    if outer:
        _splices.memo = {}
    try:
        yield
    finally:
        if outer:
            _splices.memo = None


def splice_rows(old: sp.csr_matrix, new: sp.csr_matrix, replaced: np.ndarray) -> sp.csr_matrix:
    """Rows where ``replaced`` from ``new`` (which may have more rows: new users), the others
    from ``old``; column order within rows kept."""
    memo = getattr(_splices, "memo", None)
    key = (id(old), id(new), np.flatnonzero(replaced).tobytes(), len(replaced))
    if memo is not None and key in memo:
        was_old, was_new, out = memo[key]
        if was_old is old and was_new is new:  # ids alone could be reused
            return out
    indptr, (indices, data) = splice_segments(
        old.indptr, [old.indices, old.data], replaced, new.indptr, [new.indices, new.data]
    )
    out = sp.csr_matrix((data, indices, indptr), shape=(len(replaced), new.shape[1]))
    if memo is not None:
        memo[key] = (old, new, out)
    return out


def aligned_table(table: pd.DataFrame | None, key: str, ids: IdMap) -> pd.DataFrame | None:
    """``table`` reindexed so row i describes id ``ids.ids[i]`` (missing ids get empty rows)."""
    if table is None:
        return None
    t = table.copy()
    t[key] = t[key].astype(str)
    return t.set_index(key).reindex(pd.Index(ids.ids, name=key)).reset_index()


def genre_vectors(item_table: pd.DataFrame | None) -> np.ndarray | None:
    """Multi-hot genre vectors (items x genres) for intra-list diversity, if genres exist."""
    if item_table is None or C.GENRES not in item_table:
        return None
    lists = [g if isinstance(g, list | np.ndarray) else [] for g in item_table[C.GENRES]]
    vocab = sorted({str(x) for g in lists for x in g})
    if not vocab:
        return None
    col = {g: j for j, g in enumerate(vocab)}
    out = np.zeros((len(lists), len(vocab)), dtype=np.float32)
    for i, g in enumerate(lists):
        out[i, [col[str(x)] for x in g]] = 1.0
    return out


def widen(m: sp.csr_matrix, shape: tuple[int, int]) -> sp.csr_matrix:
    """``m`` with zero rows/columns appended up to ``shape``."""
    m = m.tocsr()
    n_rows = shape[0]
    indptr = np.r_[m.indptr, np.full(n_rows - m.shape[0], m.indptr[-1])]
    return sp.csr_matrix((m.data, m.indices, indptr), shape=shape)


def pad_rows(a: np.ndarray, n: int) -> np.ndarray:
    """``a`` with zero rows appended up to ``n`` rows."""
    if len(a) >= n:
        return a
    return np.concatenate([a, np.zeros((n - len(a), *a.shape[1:]), a.dtype)])


def is_catalogue(item_idx: np.ndarray, n_items: int) -> bool:
    """Whether ``item_idx`` is every item in order (what ``score`` asks for by default)."""
    return len(item_idx) == n_items and np.array_equal(item_idx, np.arange(n_items))


def item_columns(scores: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
    """``scores[:, item_idx]`` for scores over every item; no copy when every item is asked
    for in order (tuning and evaluation score the whole catalogue, users x items a call)."""
    return scores if is_catalogue(item_idx, scores.shape[1]) else scores[:, item_idx]
