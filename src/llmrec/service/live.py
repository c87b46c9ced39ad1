"""A trained model kept current between refits: events, items and deletions take effect at once.

The model folder (``llmrec train``) holds the model and the events it was trained on
(``log.parquet``). Events stored after training (sequence number above ``store_seq`` in
``training.json``) are replayed at start and appended as they arrive; the model then
``observe``s the whole log, new users included, without refitting. A request for a user with
unapplied events applies them first, so the very next recommendation reflects them; other
users' events (which move item-level statistics only) are applied at most ``refresh_every``
seconds later.

Dislikes never count as positive history: the item and its near-duplicates (text cosine at
or above ``near_duplicate``) leave that user's lists.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from llmrec.data import columns as C
from llmrec.data.ids import IdMap
from llmrec.data.matrix import TrainData
from llmrec.errors import LlmrecError
from llmrec.eval.evaluate import genre_vectors
from llmrec.llm.explain import Explainer, Explanation, Kind
from llmrec.llm.safety import OutputChecker
from llmrec.models.base import Recommender
from llmrec.models.content import text_part
from llmrec.online.policies import EpsilonGreedySlate
from llmrec.query.answer import item_rows
from llmrec.ranking.rerank import Reranker, RerankSpec
from llmrec.service.asking import Asking
from llmrec.service.browse import BrowseQueries
from llmrec.service.coldstart import ColdStart
from llmrec.service.errors import UnknownItemError, UnknownUserError
from llmrec.service.explanations import EvidenceFor, Explanations, language_model
from llmrec.service.folder import ITEMS_FILE, LOG_FILE, USERS_FILE, read_profiles
from llmrec.versions import label, resolve

if TYPE_CHECKING:
    from llmrec.service.store import Store

log = logging.getLogger(__name__)

LOG_COLUMNS = (C.USER_ID, C.ITEM_ID, C.TIMESTAMP, C.EVENT, C.VALUE, *C.CONTEXT_COLUMNS)


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


class LiveModel(BrowseQueries, ColdStart, EvidenceFor, Asking):
    """Thread-safe: every public method takes the one lock (scoring is serial anyway)."""

    def __init__(
        self,
        model_dir: Path,
        store: Store,
        near_duplicate: float = 0.9,
        refresh_every: float = 1.0,
        cache_size: int = 50_000,
        llm: str = "auto",
        explain_budget: float = 1.5,
        item_noun: str = "item",
        explore: float = 0.0,
        explore_pool: int = 50,
        seed: int | None = None,
        rerank: RerankSpec | None = None,
    ) -> None:
        """``llm``: "auto" (the bundled model when installed, else templates), "off", or a
        runtime name ("transformers", "llama-cpp") that must load; ``explain_budget``: the
        seconds a request waits for LLM explanations before templates stand in;
        ``explore``: the share of slots that show one of the ``explore_pool`` items ranked
        below the list instead (``online.policies.EpsilonGreedySlate``; 0: the ranker's list);
        ``rerank``: the post-ranking stage every list goes through unless a request names
        its own (``ranking.rerank``)."""
        self.rerank, self.item_noun = rerank, item_noun
        self._rerankers: dict[RerankSpec, Reranker] = {}
        model_dir = resolve(model_dir)  # a home: its current version
        for f in ("manifest.json", LOG_FILE, ITEMS_FILE):
            try:
                found = (model_dir / f).is_file()
            except OSError as e:  # e.g. a name too long
                raise LlmrecError(f"{str(model_dir)[:200]}: {e.strerror}") from None
            if not found:
                raise LlmrecError(f"{model_dir}: no {f}; serve a folder written by `llmrec train`")
        self.model = Recommender.load(model_dir)
        info_path = model_dir / "training.json"
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        self.version = label(model_dir)
        self.folder = model_dir
        self.dataset: str | None = info.get("dataset")
        self.near_duplicate = near_duplicate
        self.refresh_every = refresh_every
        self.explorer = EpsilonGreedySlate(explore, explore_pool) if explore > 0 else None
        self._rng = np.random.default_rng(seed)
        self._lock = threading.RLock()
        self._cache: OrderedDict[tuple[Any, ...], list[Recommended]] = OrderedDict()
        self._cache_size = cache_size
        self._user_version: dict[str, int] = {}  # in cache keys: a user's event retires them

        self.watermark = int(info.get("store_seq", 0))
        log = pd.read_parquet(model_dir / LOG_FILE)
        catalogue = pd.read_parquet(model_dir / ITEMS_FILE)
        self._facts: dict[str, dict[str, Any]] = {}  # item id -> title, genres, year
        self._items_table: pd.DataFrame | None = None  # the catalogue, every column
        self._catalogue(catalogue)
        deleted = store.deleted_users()
        self._profiles = read_profiles(model_dir / USERS_FILE, deleted)
        self.checker = OutputChecker([f[C.TITLE] for f in self._facts.values()], self._profiles)
        log = log[~deleted.mask(log[C.USER_ID])]
        self._user_ids: list[str] = list(self.model.users_.ids)
        self._user_pos = {u: i for i, u in enumerate(self._user_ids)}
        self._base = self._indexed(log)
        self._live = self._base.iloc[:0]
        self._arrived: list[tuple[Any, ...]] = []  # joined to _live at the next refresh
        self._dislikes: dict[str, list[tuple[str, int]]] = {}  # (item, timestamp)
        old = store.events_since(0, event="dislike")  # kept across refits
        old = old[old["seq"] <= self.watermark]
        for u, i, t in zip(
            old[C.USER_ID].astype(str), old[C.ITEM_ID].astype(str), old[C.TIMESTAMP], strict=True
        ):
            self._dislikes.setdefault(u, []).append((i, int(t)))
        self._pending: set[str] = set()
        self._dirty = True
        self._last_refresh = 0.0
        stored_items = store.items_table()
        if len(stored_items):
            self._add_items(stored_items)
        self.add_events(store.events_since(self.watermark))
        self.refresh()
        self.explanations = Explanations(
            Explainer(language_model(llm), self.checker, noun=item_noun), explain_budget
        )

    # --- writes ----------------------------------------------------------------------------
    def check_items(self, item_ids: list[str]) -> None:
        """Raises ``UnknownItemError`` for the first id the catalogue does not have."""
        for i in item_ids:
            if i not in self.model.items_:
                raise UnknownItemError(i)

    def add_events(self, events: list[dict[str, Any]] | pd.DataFrame) -> None:
        """Take stored events (dicts with store.EVENT_COLUMNS); applied lazily (see the
        module doc). Plain Python per event: the frame is built once, at the refresh."""
        rows = events.to_dict("records") if isinstance(events, pd.DataFrame) else events
        if not rows:
            return
        with self._lock:
            self.check_items([str(r[C.ITEM_ID]) for r in rows])
            for r in rows:
                user, item = str(r[C.USER_ID]), str(r[C.ITEM_ID])
                if user not in self._user_pos:
                    self._user_pos[user] = len(self._user_ids)
                    self._user_ids.append(user)
                self._pending.add(user)
                self._user_version[user] = self._user_version.get(user, 0) + 1
                if r[C.EVENT] == "dislike":
                    self._dislikes.setdefault(user, []).append((item, int(r[C.TIMESTAMP])))
                    continue
                self._arrived.append(
                    (user, item, int(r[C.TIMESTAMP]), r[C.EVENT], r.get(C.VALUE),
                     *(r.get(c) for c in C.CONTEXT_COLUMNS),
                     self._user_pos[user], self.model.items_.position(item))
                )  # fmt: skip
            self._dirty = True

    def delete_user(self, user_id: str) -> None:
        with self._lock:
            self._join_arrived()
            self._base = self._base[self._base[C.USER_ID] != user_id]
            self._live = self._live[self._live[C.USER_ID] != user_id]
            self._dislikes.pop(user_id, None)
            self._profiles.pop(user_id, None)
            self.checker.forget(user_id)
            self.explanations.forget()  # cached texts may quote the user's history
            self._user_version[user_id] = self._user_version.get(user_id, 0) + 1
            self._dirty = True
            self.refresh()

    def put_item(self, item: pd.DataFrame) -> None:
        with self._lock:
            self._add_items(item)
            self._dirty = True
            self.refresh()

    def _add_items(self, table: pd.DataFrame) -> None:
        self.model.add_items(table)
        self._catalogue(table)
        self.checker.add_titles(table[C.TITLE].astype(str))

    def _catalogue(self, table: pd.DataFrame) -> None:
        old = self._items_table
        self._items_table = table if old is None else pd.concat([old, table], ignore_index=True)
        self._qindex = None  # requests in words read the new rows
        genres = table[C.GENRES] if C.GENRES in table else pd.Series([None] * len(table))
        years = table[C.YEAR] if C.YEAR in table else pd.Series([None] * len(table))
        for i, t, g, y in zip(
            table[C.ITEM_ID].astype(str), table[C.TITLE].astype(str), genres, years, strict=True
        ):
            self._facts[i] = {
                C.TITLE: t,
                C.GENRES: [str(x) for x in g] if isinstance(g, list | tuple | np.ndarray) else [],
                C.YEAR: int(y) if y is not None and pd.notna(y) else None,
            }

    def refresh(self) -> None:
        """Apply every unapplied event: the model observes the whole current log."""
        with self._lock:
            if not self._dirty:
                return
            self._join_arrived()
            log = pd.concat([self._base, self._live], ignore_index=True)
            users = IdMap(np.asarray(self._user_ids))
            data = TrainData.build(log, users, self.model.items_, rules=self.model.event_rules_)
            self.model.observe(data)
            self._popularity(data)
            self._user_events = np.bincount(data.log["user_idx"], minlength=data.n_users)
            self._item_events = np.bincount(data.log["item_idx"], minlength=data.n_items)
            self._pending.clear()
            self._dirty = False
            self._cache.clear()  # every list was computed on the old state
            self._rerankers.clear()  # popularity moved
            self._last_refresh = time.monotonic()

    def _join_arrived(self) -> None:
        if self._arrived:
            new = pd.DataFrame(self._arrived, columns=[*LOG_COLUMNS, "user_idx", "item_idx"])
            new[C.VALUE] = pd.to_numeric(new[C.VALUE], errors="coerce")
            self._live = pd.concat([self._live, new], ignore_index=True)
            self._arrived = []

    def _indexed(self, log: pd.DataFrame) -> pd.DataFrame:
        out = log.reset_index(drop=True).copy()
        out["user_idx"] = out[C.USER_ID].astype(str).map(self._user_pos).to_numpy(np.int64)
        out["item_idx"] = self.model.items_.index(out[C.ITEM_ID].astype(str))
        out[C.TIMESTAMP] = out[C.TIMESTAMP].astype(np.int64)
        return out

    # --- reads -----------------------------------------------------------------------------
    def recommend(
        self,
        user_id: str,
        k: int,
        context: dict[str, str] | None = None,
        explain: bool = False,
        rerank: RerankSpec | None = None,
    ) -> list[Recommended]:
        context = {key: v for key, v in (context or {}).items() if v is not None}
        spec = rerank or self.rerank
        with self._lock:
            self._current(user_id)
            n = k + self.explorer.pool if self.explorer else k
            key = self._key(user_id, n, context, spec)
            out = self._cache.get(key)
            if out is None:
                out = self._recommend(user_id, n, context, spec)
                self._cache[key] = out
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)  # first in, first out
            if self.explorer:
                out = self._explore(out, k)
            if not explain:
                return out
            evidence = [self._evidence(user_id, r.item_id) for r in out]
        # outside the lock: waiting for the LLM must not hold up other requests
        texts = self.explanations.get(user_id, evidence)
        return [
            replace(r, explanation=x.text, explanation_source=x.source)
            for r, x in zip(out, texts, strict=True)
        ]

    def explain(self, user_id: str, item_id: str, kind: Kind = "explanation") -> Explanation:
        """Why ``item_id`` suits ``user_id`` ("explanation"), or a short personalised pitch
        for it ("pitch"), within the explanation budget."""
        with self._lock:
            self._current(user_id)
            self.check_items([item_id])
            if user_id not in self._user_pos and user_id not in self._profiles:
                raise UnknownUserError(user_id)
            evidence = self._evidence(user_id, item_id)
        return self.explanations.get(user_id, [evidence], kind)[0]

    def _explore(self, ranked: list[Recommended], k: int) -> list[Recommended]:
        assert self.explorer is not None
        slate = self.explorer.choose(np.arange(len(ranked)), k, self._rng)
        return [
            replace(
                ranked[int(r)], rank=int(r), propensity=float(p), explored=bool(e), pool=slate.pool
            )  # fmt: skip
            for r, p, e in zip(slate.items, slate.propensities, slate.explored, strict=True)
        ]

    def cached(
        self,
        user_id: str,
        k: int,
        context: dict[str, str],
        explain: bool,
        rerank: RerankSpec | None = None,
    ) -> list[Recommended] | None:
        """The cached list when it is still current, without taking the lock (the server's
        event loop answers hits itself; a miss, explanations or exploration go to a worker
        thread)."""
        if explain or self.explorer or user_id in self._pending or self._dirty:
            return None
        return self._cache.get(self._key(user_id, k, context, rerank or self.rerank))

    def _key(
        self, user_id: str, k: int, context: dict[str, str], rerank: RerankSpec | None = None
    ) -> tuple[object, ...]:
        version = self._user_version.get(user_id, 0)
        return (user_id, k, tuple(sorted(context.items())), version, rerank)

    def close(self) -> None:
        self.explanations.close()

    def _recommend(
        self, user_id: str, k: int, context: dict[str, str], rerank: RerankSpec | None = None
    ) -> list[Recommended]:
        m = self.model
        u = self._user_pos.get(user_id)
        history = m.history_[u].indices if u is not None else np.zeros(0, np.int64)
        blocked = self._blocked(user_id)
        if not len(history):
            idx, scores = self._cold(k, context, blocked)
            sources = [
                COLD_SOURCES[1] if self._pop[i] == 0 and self._borrowed[i] > 0 else COLD_SOURCES[0]
                for i in idx
            ]
        else:
            reranker = self._reranker(rerank) if rerank and rerank.strength > 0 else None
            n = max(k, reranker.pool) if reranker else k
            (ids, sc), src = m.recommend_with_sources(
                [user_id], k=n + len(blocked), context=context or None
            )
            keep = [
                (i, s, r) for i, s, r in zip(ids[0], sc[0], src[0], strict=True) if i not in blocked
            ][:n]
            idx = m.items_.index([i for i, _, _ in keep])
            scores = np.array([s for _, s, _ in keep], dtype=float)
            sources = [r for _, _, r in keep]
            if reranker is not None:  # the evaluated reranker's own ordering of this pool
                live = np.isfinite(scores)
                idx, scores = idx[live], scores[live]
                sources = [r for r, ok in zip(sources, live, strict=True) if ok]
                row = m.history_[u]
                order = reranker.order(idx, scores, row.indices[row.data > 0], k)
                idx = idx[order]
                scores = np.arange(len(order), 0, -1, dtype=float)  # the list's order
                sources = [f"{sources[j]} · {rerank}" for j in order]
        return [
            Recommended(str(m.items_.ids[i]), float(s), self._title(i), source=source)
            for i, s, source in zip(idx, scores, sources, strict=True)
            if np.isfinite(s)  # -inf: excluded (a dislike) or unscorable, never a result
        ]

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

    def similar(self, item_id: str, k: int) -> list[Recommended]:
        """Nearest items by text vector (co-occurrence when the model has no text)."""
        with self._lock:
            m = self.model
            i = int(m.items_.index([item_id])[0])
            if i < 0:
                raise UnknownItemError(item_id)
            vecs = self._vectors()
            if vecs is not None:
                sims = vecs @ vecs[i]
            else:
                h = m.history_.tocsc()
                co = np.asarray((h.T @ h[:, i]).todense()).ravel().astype(float)
                n = np.asarray(h.sum(axis=0)).ravel()
                sims = co / np.sqrt(np.maximum(n * n[i], 1e-12))
            sims[i] = -np.inf
            top = np.argsort(-sims, kind="stable")[: min(k, len(sims) - 1)]
            return [Recommended(str(m.items_.ids[j]), float(sims[j]), self._title(j)) for j in top]

    # --- helpers ---------------------------------------------------------------------------
    def _title(self, i: int) -> str:
        return self._title_of(str(self.model.items_.ids[i]))

    def _title_of(self, item_id: str) -> str:
        facts = self._facts.get(item_id)
        return facts[C.TITLE] if facts else item_id

    def _current(self, user_id: str | None = None) -> None:
        """Apply unapplied events before a read: at once when they are ``user_id``'s own,
        otherwise at most every ``refresh_every`` seconds (a refresh observes the whole log)."""
        stale = time.monotonic() - self._last_refresh > self.refresh_every
        if user_id in self._pending or (self._dirty and stale):
            self.refresh()

    def _item_rows(self) -> pd.DataFrame:
        assert self._items_table is not None
        return item_rows(self._items_table, self.model.items_.ids)

    def _vectors(self) -> np.ndarray | None:
        """Unit text vectors of the catalogue, if the model has them."""
        part = text_part(self.model)
        return None if part is None else np.asarray(part.item_vectors_)

    def exclusions(self) -> dict[str, set[str]]:
        """Per user, what every list of theirs leaves out (dislikes and near-duplicates)."""
        with self._lock:
            self._current()
            return {u: self._blocked(u) for u in self._dislikes}

    def _blocked(self, user_id: str) -> set[str]:
        """Disliked items and their near-duplicates."""
        disliked = [i for i, _ in self._dislikes.get(user_id, [])]
        if not disliked:
            return set()
        m = self.model
        idx = m.items_.index(disliked)
        out = set(disliked)
        vecs = self._vectors()
        if vecs is not None:
            near = (vecs[idx] @ vecs.T >= self.near_duplicate).any(axis=0)
            out |= set(m.items_.ids[near].tolist())
        return out
