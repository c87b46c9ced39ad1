"""The live model's answer for a user without history: recent popularity, per request
context, with items that have no events yet borrowing their text neighbours' popularity. A
mixin of ``LiveModel`` (its state, refreshed with the model)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmrec.models.base import Recommender

RECENT_DAYS = 30
DAY = 86_400


MIN_RECENT = 100  # fewer events than this in the window: all time counts instead
TAIL_MIN = 4_096  # arrived events kept unsorted up to this many...
TAIL_SHARE = 8  # ...or an eighth of the sorted ones (merging costs them all)


class RecentPopularity:
    """Per item, its events in the ``RECENT_DAYS`` before the newest event, and per context
    field its events per value; all-time counts beside. Kept as events arrive: each event
    enters the window once and leaves it once (when the newest event moves the window past
    it), so adding events costs them, not the log. ``columns``: the context columns with
    values in the log (a column that gets its first values needs a new instance: the live
    model then observes the whole log)."""

    def __init__(self, n_items: int, columns: set[str] | frozenset[str] = frozenset()) -> None:
        self.columns = frozenset(columns)
        self.cut = np.iinfo(np.int64).min  # the window: timestamps at or after this
        self.now: int | None = None
        self.window, self.all = np.zeros(n_items), np.zeros(n_items)
        self.codes: dict[str, dict[str, int]] = {}  # column -> value -> column of counts
        self.window_ctx: dict[str, np.ndarray] = {}  # column -> (items, values)
        self.all_ctx: dict[str, np.ndarray] = {}
        # every event so far, by timestamp (for leaving the window): sorted + a small tail
        self._sorted = _Events.empty()
        self._tail: list[_Events] = []

    def grow(self, n_items: int) -> None:
        """New items: no events yet."""
        extra = n_items - len(self.all)
        if extra > 0:
            self.window, self.all = (
                np.r_[self.window, np.zeros(extra)],
                np.r_[self.all, np.zeros(extra)],
            )
            for d in (self.window_ctx, self.all_ctx):
                for col, m in d.items():
                    d[col] = np.vstack([m, np.zeros((extra, m.shape[1]))])

    def add(self, ts: np.ndarray, items: np.ndarray, context: dict[str, np.ndarray]) -> None:
        """Events (timestamps, item rows, per context column their values, None when
        unset)."""
        if not len(ts):
            return
        ev = _Events(np.asarray(ts, np.int64), np.asarray(items, np.int64),
                     {c: self._code(c, v) for c, v in context.items()
                      if c in self.columns})  # fmt: skip
        _count(self.all, self.all_ctx, ev, 1.0)
        now = int(ev.ts.max()) if self.now is None else max(self.now, int(ev.ts.max()))
        cut = now - RECENT_DAYS * DAY
        if cut > self.cut:  # events between the old and the new start leave the window
            leaving = [self._sorted.between(self.cut, cut, ordered=True)]
            for part in (*leaving, *(t.between(self.cut, cut) for t in self._tail)):
                _count(self.window, self.window_ctx, part, -1.0)
        _count(self.window, self.window_ctx, ev.between(cut, None), 1.0)
        self.now, self.cut = now, cut
        self._tail.append(ev)
        if sum(len(t.ts) for t in self._tail) > max(TAIL_MIN, len(self._sorted.ts) // TAIL_SHARE):
            self.merge()

    def merge(self) -> None:
        """The arrived events folded into the sorted ones (a linear merge)."""
        self._sorted, self._tail = _Events.merged([self._sorted, *self._tail]), []

    def _code(self, col: str, values: np.ndarray) -> np.ndarray:
        """Value codes of one context column (unset: ""), growing the count matrices."""
        s = pd.Series(values, dtype=object)
        missing = s.isna().to_numpy()
        vals = s.where(~missing, "").astype(str).to_numpy(dtype=str)
        uniq, inv = np.unique(vals, return_inverse=True)
        codes = self.codes.setdefault(col, {})
        for v in uniq.tolist():
            codes.setdefault(v, len(codes))
        n = len(codes)
        for d in (self.window_ctx, self.all_ctx):
            m = d.get(col, np.zeros((len(self.all), 0)))
            if m.shape[1] < n:
                d[col] = np.hstack([m, np.zeros((m.shape[0], n - m.shape[1]))])
        return np.array([codes[v] for v in uniq.tolist()], dtype=np.int64)[inv.ravel()]

    def counts(self) -> tuple[np.ndarray, dict[str, tuple[dict[str, int], np.ndarray]]]:
        """Per item its events, and per given context column (value -> column, per item
        counts): the window's, or all time when the window holds under ``MIN_RECENT``. Only
        values that occur there are listed."""
        recent = self.window.sum() >= MIN_RECENT
        pop, ctx = (self.window, self.window_ctx) if recent else (self.all, self.all_ctx)
        out = {}
        for col in sorted(self.columns):
            m = ctx[col]
            there = m.sum(axis=0) > 0
            out[col] = ({v: j for v, j in self.codes[col].items() if there[j]}, m)
        return pop.copy(), out


class _Events:
    """Events as arrays: timestamps, item rows, per context column value codes."""

    def __init__(self, ts: np.ndarray, items: np.ndarray, codes: dict[str, np.ndarray]) -> None:
        self.ts, self.items, self.codes = ts, items, codes

    @classmethod
    def empty(cls) -> _Events:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), {})

    @classmethod
    def merged(cls, parts: list[_Events]) -> _Events:
        ts = np.concatenate([p.ts for p in parts])
        order = np.argsort(ts, kind="stable")  # sorted runs: a merge
        cols = {c for p in parts if len(p.ts) for c in p.codes}
        codes = {c: np.concatenate([p.codes[c] for p in parts if len(p.ts)])[order] for c in cols}
        return cls(ts[order], np.concatenate([p.items for p in parts])[order], codes)

    def between(self, lo: int, hi: int | None, ordered: bool = False) -> _Events:
        """Events with lo <= ts (< hi when given); ``ordered``: ts is sorted (a slice)."""
        if ordered:
            a = int(np.searchsorted(self.ts, lo))
            b = len(self.ts) if hi is None else int(np.searchsorted(self.ts, hi))
            keep: slice | np.ndarray = slice(a, max(a, b))
        else:
            keep = self.ts >= lo
            if hi is not None:
                keep &= self.ts < hi
        return _Events(self.ts[keep], self.items[keep], {c: v[keep] for c, v in self.codes.items()})


def _count(counts: np.ndarray, ctx: dict[str, np.ndarray], ev: _Events, sign: float) -> None:
    if not len(ev.ts):
        return
    counts += sign * np.bincount(ev.items, minlength=len(counts))
    for col, codes in ev.codes.items():
        m = ctx[col]
        flat = np.bincount(ev.items * m.shape[1] + codes, minlength=m.size)
        m += sign * flat.reshape(m.shape)


NEAR = 10  # an item without events borrows the popularity of this many nearest items...
NEAR_POOL = 2_000  # ...by text, among this many most popular items with events
NEAR_BLOCK = 1_024  # items per matrix product: memory block x pool, never items x items


class TextNeighbours:
    """Per item without events, its ``NEAR`` nearest items by text among the ``NEAR_POOL``
    most popular ones with events, with the cosines as weights. Computed once per item, when
    it is first without events (at start, or added live), in blocks: items x items floats
    at once (before) got the service killed for memory on bench_catalogue's 100k items."""

    def __init__(self) -> None:
        self.near = np.zeros((0, NEAR), np.int64)
        self.weight = np.zeros((0, NEAR))
        self.done = np.zeros(0, bool)

    def forget(self, items: np.ndarray) -> None:
        """Items whose text changed: computed again when next needed."""
        items = items[(items >= 0) & (items < len(self.done))]
        self.done[items] = False

    def of(
        self, fresh: np.ndarray, vecs: np.ndarray, counts: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(neighbours, weights) of the ``fresh`` items (-1 and 0 pad when fewer exist);
        ``counts``: all-time events per item."""
        n = len(counts)
        if len(self.done) < n:
            extra = n - len(self.done)
            self.near = np.vstack([self.near, np.full((extra, NEAR), -1, np.int64)])
            self.weight = np.vstack([self.weight, np.zeros((extra, NEAR))])
            self.done = np.r_[self.done, np.zeros(extra, bool)]
        todo = fresh[~self.done[fresh]]
        if len(todo):
            has = np.flatnonzero(counts > 0)
            pool = has[np.argsort(-counts[has], kind="stable")[:NEAR_POOL]]
            k = min(NEAR, len(pool))
            for lo in range(0, len(todo), NEAR_BLOCK):
                rows = todo[lo : lo + NEAR_BLOCK]
                sims = vecs[rows] @ vecs[pool].T
                part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
                top = np.take_along_axis(sims, part, axis=1)
                order = np.argsort(-top, axis=1, kind="stable")
                self.near[rows] = -1
                self.weight[rows] = 0.0
                self.near[rows, :k] = pool[np.take_along_axis(part, order, axis=1)]
                self.weight[rows, :k] = np.maximum(np.take_along_axis(top, order, axis=1), 0)
            self.done[todo] = True
        return self.near[fresh], self.weight[fresh]


class ColdStart:
    model: Recommender
    _pop: np.ndarray
    _borrowed: np.ndarray
    _pop_ctx: dict[str, tuple[dict[str, int], np.ndarray]]
    _recent: RecentPopularity
    _near: TextNeighbours

    def _vectors(self) -> np.ndarray | None:
        raise NotImplementedError

    def _popularity(self) -> None:
        """Cold-start scores from ``_recent``: events in the last ``RECENT_DAYS`` (all time
        when too few), per context value the smoothed share of each item's events in it; items
        with no events yet borrow half the weighted popularity of their nearest items by text
        (``TextNeighbours``)."""
        self._pop, self._pop_ctx = self._recent.counts()
        n = len(self._pop)
        vecs = self._vectors()
        counts = self._recent.all[:n]
        fresh = np.flatnonzero(counts == 0)
        self._borrowed = np.zeros(n)
        if vecs is not None and len(fresh) and len(fresh) < n:
            near, w = self._near.of(fresh, vecs, counts)
            pop = np.where(near >= 0, self._pop[np.maximum(near, 0)], 0.0)
            self._borrowed[fresh] = 0.5 * (w * pop).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-12)

    def _cold(
        self, k: int, context: dict[str, str], blocked: set[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """A user with no history: popularity in the request's context, new items by text."""
        score = self._pop + self._borrowed
        for col, value in context.items():
            if col in self._pop_ctx:
                index, counts = self._pop_ctx[col]
                j = index.get(str(value))
                hits = counts[:, j] if j is not None else np.zeros(len(score))
                score = score * (hits + 1.0) / (counts.sum(axis=1) + len(index))
        if blocked:
            score = score.copy()
            score[self.model.items_.index(list(blocked))] = -np.inf
        top = np.argsort(-score, kind="stable")[:k]
        return top, score[top]
