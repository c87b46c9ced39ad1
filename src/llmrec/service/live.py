"""A trained model kept current between refits: events, items and deletions take effect at once.

The model folder (``llmrec train``) holds the model and the events it was trained on
(``log.parquet``). Events stored after training (sequence number above ``store_seq`` in
``training.json``) are replayed at start and appended as they arrive (``service.eventlog``);
at start the model ``observe``s the whole log, new users included, without refitting. Then
new events are applied by what they change: a request for a user with unapplied events
updates that user's state first (``observe_users``), so the very next recommendation
reflects them; other users' events move item-level statistics (``observe_item_events``, the
cold-start popularity) at most ``refresh_every`` seconds later. Both cost the new events and
the acting users' logs, not the whole log; a deletion, or a model that cannot update users
alone, makes the next refresh observe the whole log again.

Dislikes never count as positive history: the item and its near-duplicates (text cosine at
or above ``near_duplicate``) leave that user's lists.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from llmrec.config import SERVE
from llmrec.data import columns as C
from llmrec.data.ids import IdMap
from llmrec.data.matrix import TrainData
from llmrec.llm.explain import Explainer, Explanation, Kind
from llmrec.llm.safety import OutputChecker
from llmrec.models.content import text_part
from llmrec.online.policies import EpsilonGreedySlate
from llmrec.query.answer import item_rows
from llmrec.rerank import Reranker, RerankSpec
from llmrec.service.asking import Asking
from llmrec.service.batching import Batcher
from llmrec.service.browse import BrowseQueries
from llmrec.service.coldstart import ColdStart, RecentPopularity, TextNeighbours
from llmrec.service.errors import UnknownItemError, UnknownUserError
from llmrec.service.eventlog import LOG_COLUMNS, EventLog
from llmrec.service.explanations import EvidenceFor, Explanations, language_model
from llmrec.service.folder import ModelFolder, load_folder
from llmrec.service.listing import Ask, Listing, Recommended

if TYPE_CHECKING:
    from llmrec.service.store import Store

log = logging.getLogger(__name__)

# stored events remembered as applied, behind the newest (a follower reads back fewer)
APPLIED_KEPT = 10_000


class LiveModel(BrowseQueries, ColdStart, EvidenceFor, Asking, Listing):
    """Thread-safe: every public method takes the one lock; uncached lists wanted at the same
    time are scored together (``listing``)."""

    def __init__(
        self,
        folder: ModelFolder | Path,
        store: Store,
        near_duplicate: float = SERVE.near_duplicate,
        refresh_every: float = SERVE.refresh_every,
        cache_size: int = SERVE.cache_size,
        llm: str = SERVE.llm,
        explain_budget: float = SERVE.explain_budget,
        item_noun: str = SERVE.item_noun,
        explore: float = SERVE.explore,
        explore_pool: int = SERVE.explore_pool,
        seed: int | None = None,
        rerank: RerankSpec | None = None,
        max_batch: int = SERVE.max_batch,
        ask_llm: bool = SERVE.ask_llm,
    ) -> None:
        """``llm``: "auto" (the bundled model when installed, else templates), "off", or a
        runtime name ("transformers", "llama-cpp") that must load; ``explain_budget``: the
        seconds a request waits for LLM explanations before templates stand in;
        ``explore``: the share of slots that show one of the ``explore_pool`` items ranked
        below the list instead (``online.policies.EpsilonGreedySlate``; 0: the ranker's list);
        ``rerank``: the post-ranking stage every list goes through unless a request names
        its own (``llmrec.rerank``); ``max_batch``: the most uncached lists one model call
        scores (requests that queue meanwhile wait for the next); ``ask_llm``: the LLM (when
        ``llm`` gives one) reads the words a request in words leaves as a genre
        (``query.helper``; off by default: ~0.8 s per request it reads)."""
        self.rerank, self.item_noun, self.ask_llm = rerank, item_noun, ask_llm
        self._rerankers: dict[RerankSpec, Reranker] = {}
        # ``folder``: read already (``folder.load_folder``), or a path to read
        folder = folder if isinstance(folder, ModelFolder) else load_folder(folder)
        self.model = folder.model
        self.version = folder.version
        self.folder = folder.path
        self.dataset: str | None = folder.dataset
        self.near_duplicate = near_duplicate
        self.refresh_every = refresh_every
        self.explorer = EpsilonGreedySlate(explore, explore_pool) if explore > 0 else None
        self._rng = np.random.default_rng(seed)
        self._lock = threading.RLock()
        self._cache: OrderedDict[tuple[Any, ...], list[Recommended]] = OrderedDict()
        self._cache_size = cache_size
        self._user_version: dict[str, int] = {}  # in cache keys: a user's event retires them
        self.batches: Batcher[Ask, list[Recommended]] = Batcher(
            self._lists, self._lock, max_batch=max_batch
        )

        self.watermark = folder.store_seq
        # the stored events applied (their seqs, the recent ones): a process that follows a
        # store other processes write to (``service.follower``) reads back and skips these
        self.applied: set[int] = set()
        self.max_seq = self.watermark
        log, catalogue = folder.log, folder.catalogue
        self._facts: dict[str, dict[str, Any]] = {}  # item id -> title, genres, year
        self._items_table: pd.DataFrame | None = None  # the catalogue, every column
        self._catalogue(catalogue)
        deleted = store.deleted_users()
        self._profiles = folder.profiles(deleted)
        self.checker = OutputChecker([f[C.TITLE] for f in self._facts.values()], self._profiles)
        log = log[~deleted.mask(log[C.USER_ID])]
        self._user_ids: list[str] = list(self.model.users_.ids)
        self._user_pos = {u: i for i, u in enumerate(self._user_ids)}
        self._log = EventLog(self._indexed(log))
        self._users_map = IdMap(np.asarray(self._user_ids))
        self._fresh: list[tuple[Any, ...]] = []  # events not yet in item-level state
        self._whole = True  # the next refresh observes the whole log (see ``refresh``)
        self._given: set[str] = set()  # context columns with values in the log
        self._recent = RecentPopularity(len(self.model.items_))  # built at the first refresh
        self._near = TextNeighbours()
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
                seq = r.get("seq")
                if seq is not None and pd.notna(seq):  # a stored event: applied once
                    if int(seq) in self.applied:
                        continue
                    self.applied.add(int(seq))
                    self.max_seq = max(self.max_seq, int(seq))
                user, item = str(r[C.USER_ID]), str(r[C.ITEM_ID])
                if user not in self._user_pos:
                    self._user_pos[user] = len(self._user_ids)
                    self._user_ids.append(user)
                self._pending.add(user)
                self._user_version[user] = self._user_version.get(user, 0) + 1
                if r[C.EVENT] == "dislike":
                    self._dislikes.setdefault(user, []).append((item, int(r[C.TIMESTAMP])))
                    continue
                row = (user, item, int(r[C.TIMESTAMP]), r[C.EVENT], r.get(C.VALUE),
                       *(r.get(c) for c in C.CONTEXT_COLUMNS),
                       self._user_pos[user], self.model.items_.position(item))  # fmt: skip
                self._log.append(row)
                self._fresh.append(row)
            if len(self.applied) > 2 * APPLIED_KEPT:
                self.applied = {q for q in self.applied if q > self.max_seq - APPLIED_KEPT}
            self._dirty = True

    def user_ids(self) -> list[str]:
        with self._lock:
            return list(self._user_ids)

    def delete_user(self, user_id: str) -> None:
        with self._lock:
            row = self._user_pos.get(user_id)
            if row is not None:
                self._log.delete_user(row)
            self._dislikes.pop(user_id, None)
            self._profiles.pop(user_id, None)
            self.checker.forget(user_id)
            self.explanations.forget()  # cached texts may quote the user's history
            self._user_version[user_id] = self._user_version.get(user_id, 0) + 1
            self._whole = True  # events left the middle of the log
            self._dirty = True
            self.refresh()

    def put_item(self, item: pd.DataFrame) -> None:
        with self._lock:
            self._add_items(item)
            self._dirty = True
            self.refresh()

    def _add_items(self, table: pd.DataFrame) -> None:
        self.model.add_items(table)
        self._recent.grow(len(self.model.items_))
        self._near.forget(self.model.items_.index(table[C.ITEM_ID].astype(str)))  # new text
        self._catalogue(table)
        self.checker.add_titles(table[C.TITLE].astype(str))

    def _catalogue(self, table: pd.DataFrame) -> None:
        old = self._items_table
        self._items_table = table if old is None else pd.concat([old, table], ignore_index=True)
        self._qindex = None  # requests in words read the new rows
        self._common_genres = None  # the page's hints count genres again
        none = pd.Series([None] * len(table), index=table.index)
        genres = table[C.GENRES] if C.GENRES in table else none
        years = table[C.YEAR] if C.YEAR in table else none
        # what an explanation may say of the item itself: its description (or a live item's
        # text), one line, the first 300 characters
        about = next((table[c] for c in ("description", "text") if c in table), none)
        for i, t, g, y, a in zip(
            table[C.ITEM_ID].astype(str), table[C.TITLE].astype(str), genres, years, about,
            strict=True,
        ):  # fmt: skip
            self._facts[i] = {
                C.TITLE: t,
                C.GENRES: [str(x) for x in g] if isinstance(g, list | tuple | np.ndarray) else [],
                C.YEAR: int(y) if y is not None and pd.notna(y) else None,
                "about": " ".join(str(a).split())[:300] if isinstance(a, str) else "",
            }

    def refresh(self) -> None:
        """Apply every unapplied event: the users with new events are brought current alone
        and item-level state takes the new events (``observe_item_events``); the model
        observes the whole log instead at start, after a deletion, when a context column
        gets its first values, or when it cannot update users alone."""
        with self._lock:
            if not self._dirty:
                return
            fresh, self._fresh = self._frame(self._fresh), []
            given = {c for c in C.CONTEXT_COLUMNS if c in fresh and fresh[c].notna().any()}
            if self._whole or not self.model.can_observe_users() or given - self._given:
                log = self._log.frame()
                self.model.observe(TrainData.build(log, self._users(), self.model.items_,
                                                   rules=self.model.event_rules_))  # fmt: skip
                self._given = {c for c in C.CONTEXT_COLUMNS if c in log and log[c].notna().any()}
                self._recent = RecentPopularity(len(self.model.items_), self._given)
                self._near = TextNeighbours()
                self._count_recent(log)
                self._whole = False
            else:
                self._observe_pending()
                self.model.observe_item_events(fresh)
                self._count_recent(fresh)
            self._log.compact()
            self._popularity()
            self._pending.clear()
            self._dirty = False
            self._cache.clear()  # every list was computed on the old state
            self._rerankers.clear()  # popularity moved
            self._last_refresh = time.monotonic()

    def _count_recent(self, log: pd.DataFrame) -> None:
        ctx = {c: log[c].to_numpy(dtype=object) if c in log else np.full(len(log), None)
               for c in C.CONTEXT_COLUMNS}  # fmt: skip
        self._recent.add(log[C.TIMESTAMP].to_numpy(np.int64), log["item_idx"].to_numpy(), ctx)

    def _users(self) -> IdMap:
        """The live users as an ``IdMap`` (rebuilt only when users arrived)."""
        if len(self._users_map) != len(self._user_ids):
            self._users_map = IdMap(np.asarray(self._user_ids))
        return self._users_map

    @property
    def _user_events(self) -> np.ndarray:
        return _padded(self._log.user_counts, len(self._user_ids))

    @property
    def _item_events(self) -> np.ndarray:
        return _padded(self._log.item_counts, len(self.model.items_))

    def _observe_pending(self) -> None:
        """The users with unapplied events brought current alone (``observe_users``: their
        whole logs, not the log); item-level state waits for the next refresh. A refresh
        instead when the model cannot update users alone or must observe the whole log."""
        m = self.model
        if self._whole or not m.can_observe_users():
            self.refresh()
            return
        if not self._pending:
            return
        users = self._users()
        rows = np.array(sorted(self._user_pos[u] for u in self._pending), dtype=np.int64)
        part = TrainData.build(self._log.users(rows), users, m.items_, rules=m.event_rules_)
        m.observe_users(part, rows)
        self._pending.clear()

    @staticmethod
    def _frame(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
        new = pd.DataFrame(rows, columns=[*LOG_COLUMNS, "user_idx", "item_idx"])
        new[C.VALUE] = pd.to_numeric(new[C.VALUE], errors="coerce")
        new[C.TIMESTAMP] = new[C.TIMESTAMP].astype(np.int64)
        return new

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
        n = k + self.explorer.pool if self.explorer else k
        ask = Ask(user_id, n, tuple(sorted(context.items())), rerank or self.rerank)
        out = self.batches.submit(ask)  # scored with the uncached lists wanted meanwhile
        if not self.explorer and not explain:
            return out
        with self._lock:
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
        """Apply unapplied events before a read: at once when they are ``user_id``'s own
        (the pending users' state alone), otherwise at most every ``refresh_every`` seconds
        (a refresh: the model observes the whole log)."""
        stale = time.monotonic() - self._last_refresh > self.refresh_every
        if self._dirty and stale:
            self.refresh()
        elif user_id in self._pending:
            self._observe_pending()

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


def _padded(counts: np.ndarray, n: int) -> np.ndarray:
    """``counts`` cut or padded with zeros to ``n``."""
    return counts[:n] if len(counts) >= n else np.r_[counts, np.zeros(n - len(counts), np.int64)]
