"""The live model's lists, computed for a batch of requests at once (#23).

Uncached requests that queue while a list is being scored are answered by the next run
together (``batching.Batcher`` under the model lock): every request is brought up to date
(its user's events), cache hits are taken, and the misses that share a request context and a
post-ranking stage go through the model in one vectorised call (retrievers, features and
ranker over all their users), each user then taking its own list. The model's scores of a
user do not depend on the other users in the call nor on ``k`` (the top-k order is total:
ties to the lower id), so a batched list is the list that user alone would get
(tests/test_batching.py). A mixin of ``LiveModel`` (its state and lock).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from llmrec.data import columns as C
from llmrec.data.matrix import genre_vectors
from llmrec.models.base import Recommender
from llmrec.rerank import Reranker, RerankSpec


@dataclass(frozen=True)
class Recommended:
    item_id: str
    score: float
    title: str
    explanation: str | None = None
    source: str | None = None  # the retriever (or cold-start rule) that proposed the item
    explanation_source: str | None = None  # "llm" or "template"
    rank: int | None = None  # exploring: the item's 0-based rank in the ranker's list
    propensity: float | None = None  # exploring: P(this item at this position)
    explored: bool | None = None  # exploring: the slot showed a pool item
    pool: int | None = None  # exploring: how many items below the list could be shown


# the ``source`` of the items in a list for a user without history
COLD_SOURCES = ("popular", "text-neighbours")


@dataclass(frozen=True)
class Ask:
    """One request's list: ``n`` items for ``user_id`` in ``context`` after ``rerank``."""

    user_id: str
    n: int
    context: tuple[tuple[str, str], ...]  # sorted (field, value) pairs
    rerank: RerankSpec | None = None


class Listing:
    model: Recommender
    _cache: OrderedDict[tuple[Any, ...], list[Recommended]]
    _cache_size: int
    _user_pos: dict[str, int]
    _pop: np.ndarray
    _borrowed: np.ndarray
    _facts: dict[str, dict[str, Any]]
    _rerankers: dict[RerankSpec, Reranker]
    _lock: threading.RLock

    # provided by LiveModel and its other mixins
    def _current(self, user_id: str | None = None) -> None:
        raise NotImplementedError

    def _key(self, user_id: str, k: int, context: dict[str, str], rerank: Any) -> tuple[Any, ...]:
        raise NotImplementedError

    def _blocked(self, user_id: str) -> set[str]:
        raise NotImplementedError

    def _cold(
        self, k: int, context: dict[str, str], blocked: set[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _title(self, i: int) -> str:
        raise NotImplementedError

    # --- a batch of requests ---------------------------------------------------------------
    def _lists(self, asks: list[Ask]) -> list[list[Recommended] | BaseException]:
        """Each ask's list (the ``Batcher``'s run; the caller holds the model lock). A group
        whose scoring raises fails alone."""
        for a in asks:  # a user's own events first, so their list reflects them
            self._current(a.user_id)
        out: list[list[Recommended] | BaseException | None] = [None] * len(asks)
        misses: dict[tuple[Any, ...], list[int]] = {}  # cache key -> the asks wanting it
        for i, a in enumerate(asks):
            key = self._key(a.user_id, a.n, dict(a.context), a.rerank)
            hit = self._cache.get(key)
            if hit is not None:
                out[i] = hit
            else:
                misses.setdefault(key, []).append(i)
        groups: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
        for key, wanting in misses.items():
            a = asks[wanting[0]]
            groups.setdefault((a.context, a.rerank), []).append(key)
        for (context, rerank), keys in groups.items():
            users = [asks[misses[key][0]].user_id for key in keys]
            sizes = [asks[misses[key][0]].n for key in keys]
            try:
                lists: list[Any] = self._recommend_many(users, sizes, dict(context), rerank)
            except Exception as e:  # e.g. a context the model cannot read: this group only
                lists = [e] * len(keys)
            for key, listed in zip(keys, lists, strict=True):
                if not isinstance(listed, BaseException):
                    self._cache[key] = listed
                for i in misses[key]:
                    out[i] = listed
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)  # first in, first out
        assert all(o is not None for o in out)
        return out  # type: ignore[return-value]

    def _recommend_many(
        self,
        user_ids: list[str],
        sizes: list[int],
        context: dict[str, str],
        rerank: RerankSpec | None = None,
    ) -> list[list[Recommended]]:
        """``sizes[j]`` items for ``user_ids[j]``: users with history in one model call,
        those without from cold-start popularity."""
        m = self.model
        reranker = self._reranker(rerank) if rerank and rerank.strength > 0 else None
        out: list[list[Recommended]] = [[] for _ in user_ids]
        warm: list[int] = []
        for j, user in enumerate(user_ids):
            u = self._user_pos.get(user)
            if u is not None and m.history_[u].nnz:
                warm.append(j)
                continue
            idx, scores = self._cold(sizes[j], context, self._blocked(user))
            sources = [
                COLD_SOURCES[1] if self._pop[i] == 0 and self._borrowed[i] > 0 else COLD_SOURCES[0]
                for i in idx
            ]
            out[j] = self._listed(idx, scores, sources)
        if not warm:
            return out
        blocked = {j: self._blocked(user_ids[j]) for j in warm}
        pools = {j: max(sizes[j], reranker.pool) if reranker else sizes[j] for j in warm}
        k = max(pools[j] + len(blocked[j]) for j in warm)  # each user's list is a prefix
        ranked, sources_of = m.recommend_with_sources(
            [user_ids[j] for j in warm], k=k, context=context or None
        )
        for row, j in enumerate(warm):
            keep = [
                (i, s, r)
                for i, s, r in zip(ranked.item_ids[row], ranked.scores[row], sources_of[row],
                                   strict=True)
                if i not in blocked[j]
            ][: pools[j]]  # fmt: skip
            idx = m.items_.index([i for i, _, _ in keep])
            scores = np.array([s for _, s, _ in keep], dtype=float)
            sources = [r for _, _, r in keep]
            if reranker is not None:  # the evaluated reranker's own ordering of this pool
                live = np.isfinite(scores)
                idx, scores = idx[live], scores[live]
                sources = [r for r, ok in zip(sources, live, strict=True) if ok]
                history = m.history_[self._user_pos[user_ids[j]]]
                order = reranker.order(idx, scores, history.indices[history.data > 0], sizes[j])
                idx = idx[order]
                scores = np.arange(len(order), 0, -1, dtype=float)  # the list's order
                sources = [f"{sources[o]} · {rerank}" for o in order]
            out[j] = self._listed(idx, scores, sources)
        return out

    def _listed(self, idx: np.ndarray, scores: np.ndarray, sources: list[str]) -> list[Recommended]:
        m = self.model
        return [
            Recommended(str(m.items_.ids[i]), float(s), self._title(i), source=source)
            for i, s, source in zip(idx, scores, sources, strict=True)
            if np.isfinite(s)  # -inf: excluded (a dislike) or unscorable, never a result
        ]

    # --- post-ranking ----------------------------------------------------------------------
    def check_rerank(self, spec: RerankSpec) -> None:
        """A ``ConfigError`` when ``spec`` cannot run on this catalogue (no genres)."""
        with self._lock:
            self._reranker(spec)

    def _reranker(self, spec: RerankSpec) -> Reranker:
        """The reranker for ``spec`` with the current catalogue's genres and popularity
        (rebuilt after a refresh or new items)."""
        r = self._rerankers.get(spec)
        n = len(self.model.items_)
        if r is None or len(r.is_tail) != n:
            table = pd.DataFrame(
                {C.GENRES: [self._facts.get(str(i), {}).get(C.GENRES, []) for i in
                            self.model.items_.ids]}
            )  # fmt: skip
            pop = np.asarray((self.model.history_ > 0).sum(axis=0)).ravel().astype(float)
            r = Reranker(spec, genre_vectors(table), pop)
            self._rerankers[spec] = r
        return r
