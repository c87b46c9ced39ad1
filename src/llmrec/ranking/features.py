"""Stage two's inputs: one feature row per (user, candidate).

Groups (each can be switched off for ablations):
- ``retrievers``: every retriever's score, rank and per-user z-score; popularity; history size;
  text similarity of the candidate to the user's latest item.
- ``kg``: knowledge-graph propagation (similarity to the recent history through shared KG
  entities, mean and max) and genre overlap with the recent history.
- ``context``: request hour and weekday, item age at request time, the item's popularity in
  the 30 days before the request, days since anyone last saw it, the user's activity in the
  last day, and for each context field in the events (device, location, scenario) the share
  of the item's events made in the request's value.

Only events strictly before the request time count for time features, so nothing a user did
later (or that other users did later) leaks into them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from llmrec.data import columns as C
from llmrec.data.matrix import TrainData, pad_rows, splice_segments, widen
from llmrec.errors import LlmrecError

GROUPS = ("retrievers", "kg", "context")
DAY = 86_400
RECENT = 5  # history items that make "recent"
MERGE_MIN = 1024  # events added since the build kept apart up to this many...
MERGE_SHARE = 16  # ...or a 16th of the others (merging costs them all)


@dataclass(frozen=True)
class Request:
    """What a ranking request knows besides the history: time and context, per user."""

    time: np.ndarray  # unix seconds
    context: dict[str, np.ndarray] = field(default_factory=dict)  # column -> value per user

    @classmethod
    def latest(cls, events: EventIndex, user_idx: np.ndarray) -> Request:
        """Offline evaluation: each user's latest known event stands for the request."""
        last = events.user_indptr[user_idx + 1] - 1
        has = last >= events.user_indptr[user_idx]
        t = np.where(has, events.ts[np.maximum(last, 0)], events.now)
        ctx = {
            col: np.where(has, vals[np.maximum(last, 0)], "")
            for col, vals in events.context.items()
        }
        return cls(t.astype(np.int64), ctx)

    @classmethod
    def from_context(
        cls, events: EventIndex, user_idx: np.ndarray, context: dict[str, str]
    ) -> Request:
        """A live request: ``timestamp`` (unix seconds) and context fields (device,
        location, scenario) apply to every user; what it leaves out keeps each user's
        latest known value. Unknown fields and a bad timestamp are clear errors."""
        unknown = set(context) - {C.TIMESTAMP, *C.CONTEXT_COLUMNS}
        if unknown:
            raise LlmrecError(
                f"context fields {sorted(unknown)} unknown: use "
                + ", ".join([C.TIMESTAMP, *C.CONTEXT_COLUMNS])
            )
        latest = cls.latest(events, user_idx)
        n = len(user_idx)
        time = latest.time
        if C.TIMESTAMP in context:
            try:
                time = np.full(n, int(context[C.TIMESTAMP]), dtype=np.int64)
            except (TypeError, ValueError):
                got = context[C.TIMESTAMP]
                raise LlmrecError(
                    f"context field 'timestamp': expected unix seconds, got {got!r}"
                ) from None
        given = {k: np.full(n, str(v)) for k, v in context.items() if k != C.TIMESTAMP}
        return cls(time, {**latest.context, **given})


@dataclass(frozen=True)
class EventIndex:
    """The known event log arranged for fast per-user and per-item lookups."""

    user_indptr: np.ndarray
    items: np.ndarray  # per user, oldest first
    ts: np.ndarray
    item_indptr: np.ndarray
    item_ts: np.ndarray  # per item, sorted
    item_key: np.ndarray  # (item, timestamp) as one sortable int64 per event, item order
    context: dict[str, np.ndarray]  # column -> value per event (user order)
    item_context: dict[str, tuple[pd.Index, sp.csr_matrix]]  # column -> (values, item counts)
    now: int
    # events added since the build (``with_item_events``), as sorted item keys: looked up
    # beside ``item_key`` and merged into it once they are many
    new_key: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @classmethod
    def build(cls, data: TrainData) -> EventIndex:
        log = data.log  # sorted by user, timestamp, item
        u, i = log["user_idx"].to_numpy(), log["item_idx"].to_numpy()
        ts = log[C.TIMESTAMP].to_numpy(dtype=np.int64)
        by_item = np.lexsort((ts, i))
        item_ts = ts[by_item]
        ctx, item_ctx = {}, {}
        for col in C.CONTEXT_COLUMNS:
            if col in log and log[col].notna().any():
                vals = log[col].fillna("").astype(str).to_numpy()
                index = pd.Index(np.unique(vals))
                counts = sp.csr_matrix(
                    (np.ones(len(vals), np.float32), (i, index.get_indexer(vals))),
                    shape=(data.n_items, len(index)),
                )
                ctx[col], item_ctx[col] = vals, (index, counts)
        return cls(
            user_indptr=_indptr(u, data.n_users),
            items=i,
            ts=ts,
            item_indptr=_indptr(i[by_item], data.n_items),
            item_ts=item_ts,
            item_key=_key(i[by_item], item_ts),
            context=ctx,
            item_context=item_ctx,
            now=int(ts.max()) if len(ts) else 0,
        )

    def with_users(self, part: TrainData, replaced: np.ndarray) -> EventIndex:
        """The ``replaced`` users' events re-read from ``part`` (their whole logs); the
        per-item part (counts, times, contexts) stays until the next ``build``."""
        log = part.log
        ctx = {
            col: (
                log[col].fillna("").astype(str).to_numpy()
                if col in log
                else np.full(len(log), "", dtype=object)
            )
            for col in self.context
        }
        indptr, (items, ts, *values) = splice_segments(
            self.user_indptr,
            [self.items, self.ts, *self.context.values()],
            replaced,
            _indptr(log["user_idx"].to_numpy(), part.n_users),
            [log["item_idx"].to_numpy(), log[C.TIMESTAMP].to_numpy(dtype=np.int64), *ctx.values()],
        )
        context = dict(zip(self.context, values, strict=True))
        return dataclasses.replace(self, user_indptr=indptr, items=items, ts=ts, context=context)

    def with_item_events(
        self, items: np.ndarray, ts: np.ndarray, context: dict[str, np.ndarray]
    ) -> EventIndex:
        """The per-item part (counts, times, context shares) with new events added: their
        cost plus, once per many events, a linear merge. ``context`` holds the values of
        our context columns (None: unset); the per-user part is ``with_users``'s."""
        items, ts = np.asarray(items, np.int64), np.asarray(ts, np.int64)
        if not len(items):
            return self
        new_key = np.sort(np.r_[self.new_key, _key(items, ts)], kind="stable")
        item_context = {}
        for col, (index, counts) in self.item_context.items():
            vals = pd.Series(context.get(col, [None] * len(items)), dtype=object)
            vals = vals.where(vals.notna(), "").astype(str).to_numpy()
            index = index.append(pd.Index(np.unique(vals)).difference(index))
            j = index.get_indexer(vals)
            shape = (counts.shape[0], len(index))
            added = sp.csr_matrix((np.ones(len(items), np.float32), (items, j)), shape=shape)
            counts = sp.csr_matrix((counts.data, counts.indices, counts.indptr), shape=shape)
            item_context[col] = (index, (counts + added).tocsr())
        out = dataclasses.replace(
            self, new_key=new_key, item_context=item_context, now=max(self.now, int(ts.max()))
        )
        return (
            out._merged()
            if len(new_key) > max(MERGE_MIN, len(self.item_key) // MERGE_SHARE)
            else out
        )

    def _merged(self) -> EventIndex:
        """``new_key`` folded into the per-item arrays."""
        key = np.sort(np.r_[self.item_key, self.new_key], kind="stable")  # two sorted runs
        items = key >> 35
        return dataclasses.replace(
            self,
            item_key=key,
            item_ts=(key - (items << 35)) - (1 << 34),
            item_indptr=_indptr(items, len(self.item_indptr) - 1),
            new_key=self.new_key[:0],
        )

    def with_items(self, n_items: int) -> EventIndex:
        """The same events over a catalogue grown to ``n_items`` (new items have none)."""
        extra = n_items - (len(self.item_indptr) - 1)
        if extra <= 0:
            return self
        merged = self._merged() if len(self.new_key) else self
        return dataclasses.replace(
            merged,
            item_indptr=np.r_[merged.item_indptr, np.full(extra, merged.item_indptr[-1])],
            item_context={
                col: (index, sp.vstack([counts, sp.csr_matrix((extra, len(index)))]).tocsr())
                for col, (index, counts) in self.item_context.items()
            },
        )

    def recent(self, user_idx: np.ndarray, n: int) -> np.ndarray:
        """(users, n) latest item indices, newest last, left-padded with -1."""
        out = np.full((len(user_idx), n), -1, dtype=np.int64)
        for row, u in enumerate(user_idx):
            s = self.items[self.user_indptr[u] : self.user_indptr[u + 1]][-n:]
            out[row, n - len(s) :] = s
        return out

    def item_events_between(self, items: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Events of each item with lo <= timestamp < hi (arrays of the same shape)."""
        hi_key, lo_key = _key(items, hi), _key(items, lo)
        n = np.searchsorted(self.item_key, hi_key) - np.searchsorted(self.item_key, lo_key)
        if len(self.new_key):
            n += np.searchsorted(self.new_key, hi_key) - np.searchsorted(self.new_key, lo_key)
        return n

    def last_seen_before(self, items: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Timestamp of each item's latest event before ``t`` (NaN when none)."""
        key = _key(items, t)
        pos = np.searchsorted(self.item_key, key) - 1
        ok = pos >= self.item_indptr[items]
        seen = np.where(ok, self.item_ts[np.maximum(pos, 0)], np.nan)
        if len(self.new_key):
            pos = np.searchsorted(self.new_key, key) - 1
            k = self.new_key[np.maximum(pos, 0)]
            ok = (pos >= 0) & ((k >> 35) == np.asarray(items, np.int64))
            later = np.where(ok, (k - ((k >> 35) << 35)) - (1 << 34), np.nan)
            seen = np.fmax(seen, later)
        return seen


def _key(items: np.ndarray, t: np.ndarray) -> np.ndarray:
    # timestamps fit in 34 bits around 0 (+-272 years of seconds from 1970)
    return (np.asarray(items, np.int64) << 35) + (np.asarray(t).astype(np.int64) + (1 << 34))


def _indptr(sorted_keys: np.ndarray, n: int) -> np.ndarray:
    return np.r_[0, np.cumsum(np.bincount(sorted_keys, minlength=n))].astype(np.int64)


@dataclass(frozen=True)
class ItemSide:
    """Per-item facts fixed at fit time."""

    year: np.ndarray  # release year, NaN when unknown
    genres: np.ndarray  # (items, genres) multi-hot, rows unit-normalised
    kg: sp.csr_matrix  # item-item KG similarity
    text: np.ndarray | None  # unit text vectors (items, d)
    popularity: np.ndarray  # training users per item

    def grown(
        self, n_items: int, index: np.ndarray, items: pd.DataFrame, text: np.ndarray | None
    ) -> ItemSide:
        """Over a catalogue grown to ``n_items``: rows ``index`` take what ``items`` says
        (release year), new items have no genres, KG links or events; ``text`` as given."""
        year = np.r_[self.year, np.full(n_items - len(self.year), np.nan)]
        if C.YEAR in items:
            year[index] = pd.to_numeric(items[C.YEAR], errors="coerce").to_numpy(dtype=float)
        return ItemSide(
            year,
            pad_rows(self.genres, n_items),
            widen(self.kg, (n_items, n_items)),
            text,
            pad_rows(self.popularity, n_items),
        )


def build_features(
    user_idx: np.ndarray,
    cand: np.ndarray,
    retriever_scores: dict[str, np.ndarray],
    pair_ranks: dict[str, np.ndarray],
    side: ItemSide,
    events: EventIndex,
    request: Request,
    groups: tuple[str, ...] = GROUPS,
    share_columns: tuple[str, ...] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """(rows, features) for the (user, candidate) pairs of ``cand`` (users x N, -1 = none),
    rows in row-major order of the valid entries; and the feature names. ``pair_ranks``:
    each retriever's rank of those pairs, in that order. ``share_columns``
    limits the per-context-field share features (a trained ranker: the ones it knows)."""
    rows, cols = np.nonzero(cand >= 0)
    items = cand[rows, cols]
    feats: dict[str, np.ndarray] = {}
    recent = events.recent(user_idx, RECENT)[rows]  # (pairs, RECENT)
    has_recent = recent >= 0
    hist_len = np.diff(events.user_indptr)[user_idx][rows]

    for name, s in retriever_scores.items():
        full = np.nan_to_num(s.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        mu, sd = full.mean(axis=1), full.std(axis=1) + 1e-12
        feats[f"{name}_score"] = full[rows, items]
        feats[f"{name}_z"] = (full[rows, items] - mu[rows]) / sd[rows]
        feats[f"{name}_rank"] = np.log1p(pair_ranks[name])
    feats["item_pop"] = np.log1p(side.popularity[items])
    feats["history_len"] = np.log1p(hist_len)
    if side.text is not None:
        last = recent[:, -1]
        sim = np.einsum("ij,ij->i", side.text[items], side.text[np.maximum(last, 0)])
        feats["text_sim_last"] = np.where(last >= 0, sim, 0.0)

    if "kg" in groups:
        kg_sim = _pair_values(side.kg, recent, items)  # (pairs, RECENT)
        n_recent = np.maximum(has_recent.sum(axis=1), 1)
        feats["kg_mean_recent"] = kg_sim.sum(axis=1) / n_recent
        feats["kg_max_recent"] = kg_sim.max(axis=1)
        g = side.genres
        overlap = np.einsum("pd,prd->pr", g[items], g[np.maximum(recent, 0)]) * has_recent
        feats["genre_overlap_recent"] = overlap.sum(axis=1) / n_recent

    if "context" in groups:
        t = request.time[rows].astype(np.float64)
        when = pd.to_datetime(request.time, unit="s", utc=True)
        feats["hour"] = when.hour.to_numpy()[rows].astype(np.float64)
        feats["weekday"] = when.day_of_week.to_numpy()[rows].astype(np.float64)
        year_now = when.year.to_numpy()[rows].astype(np.float64)
        feats["item_age_years"] = year_now - side.year[items]
        feats["item_pop_30d"] = np.log1p(events.item_events_between(items, t - 30 * DAY, t))
        last_seen = events.last_seen_before(items, t)
        feats["item_days_since_seen"] = np.log1p((t - last_seen) / DAY)
        user_ts = [events.ts[events.user_indptr[u] : events.user_indptr[u + 1]] for u in user_idx]
        day = np.array(
            [
                np.sum((ts >= tt - DAY) & (ts < tt))
                for ts, tt in zip(user_ts, request.time, strict=True)
            ]
        )
        feats["user_events_1d"] = np.log1p(day[rows])
        for col, (index, counts) in events.item_context.items():
            value = request.context.get(col)
            if value is None or share_columns is not None and col not in share_columns:
                continue
            j = index.get_indexer(value[rows].astype(str))
            per_item = np.asarray(counts.sum(axis=1)).ravel()[items]
            hits = np.where(j >= 0, np.asarray(counts[items, np.maximum(j, 0)]).ravel(), 0.0)
            feats[f"item_share_{col}"] = (hits + 1.0) / (per_item + len(index))
    names = list(feats)
    return np.column_stack([feats[n] for n in names]).astype(np.float32), names


def _pair_values(m: sp.csr_matrix, recent: np.ndarray, items: np.ndarray) -> np.ndarray:
    """m[recent[p, r], items[p]] for every pair p and recent slot r (0 where recent is -1)."""
    out = np.zeros(recent.shape, dtype=np.float64)
    for r in range(recent.shape[1]):
        ok = recent[:, r] >= 0
        if ok.any():
            out[ok, r] = np.asarray(m[recent[ok, r], items[ok]]).ravel()
    return out
