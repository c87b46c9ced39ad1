"""The web page's queries over the live model: find users and items, a user's history,
context values and counts. A mixin of ``LiveModel``: it reads the model's state under its lock
and never changes it."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pandas as pd

from llmrec.data import columns as C
from llmrec.models.base import Recommender
from llmrec.service.errors import UnknownUserError
from llmrec.service.eventlog import EventLog


class BrowseQueries:
    # the LiveModel state these queries read
    _lock: threading.RLock
    _user_ids: list[str]
    _user_pos: dict[str, int]
    _user_events: np.ndarray
    _item_events: np.ndarray
    _dislikes: dict[str, list[tuple[str, int]]]
    _profiles: dict[str, dict[str, Any]]
    _facts: dict[str, dict[str, Any]]
    _common_genres: list[str] | None  # reset when the catalogue changes
    _pop_ctx: dict[str, Any]
    _log: EventLog
    model: Recommender
    version: str
    item_noun: str

    def _current(self, user_id: str | None = None) -> None:
        raise NotImplementedError

    def _title_of(self, item_id: str) -> str:
        raise NotImplementedError

    def find_users(self, query: str, limit: int) -> list[dict[str, Any]]:
        """Users whose id contains ``query`` (exact match first, then prefix, then shorter
        ids), with their event counts; users without events (deleted) are left out."""
        with self._lock:
            self._current()
            q = query.strip().lower()
            counts = zip(self._user_ids, self._user_events.tolist(), strict=False)
            hits = [(u, n) for u, n in counts if n > 0 and q in u.lower()]
            hits.sort(key=lambda h: (h[0].lower() != q, not h[0].lower().startswith(q),
                                     len(h[0]), h[0]))  # fmt: skip
            return [{"user_id": u, "events": n} for u, n in hits[:limit]]

    def user(self, user_id: str, limit: int) -> dict[str, Any]:
        """Profile, event count and the ``limit`` latest events (newest first, dislikes
        included); ``UnknownUserError`` when the user has neither events nor a profile."""
        with self._lock:
            self._current(user_id)
            pos = self._user_pos.get(user_id)
            dislikes = self._dislikes.get(user_id, [])
            n = int(self._user_events[pos]) if pos is not None else 0
            profile = self._profiles.get(user_id)
            if n == 0 and not dislikes and profile is None:
                raise UnknownUserError(user_id)
            mine = self._log.users(np.array([] if pos is None else [pos], dtype=np.int64))
            rows = [
                (int(t), i, e, None if pd.isna(v) else float(v))
                for i, t, e, v in zip(
                    mine[C.ITEM_ID], mine[C.TIMESTAMP], mine[C.EVENT], mine[C.VALUE], strict=True
                )
            ]
            rows += [(t, i, "dislike", None) for i, t in dislikes]
            rows.sort(key=lambda r: -r[0])  # stable: the log's order within a second
            history = [
                {C.ITEM_ID: str(i), C.TITLE: self._title_of(str(i)),
                 C.EVENT: e, C.VALUE: v, C.TIMESTAMP: t}
                for t, i, e, v in rows[:limit]
            ]  # fmt: skip
            return {
                "user_id": user_id,
                "profile": profile or {},
                "events": n + len(dislikes),
                "history": history,
            }

    def find_items(self, query: str, limit: int) -> list[dict[str, Any]]:
        """Items whose title or id contains ``query`` (case-insensitive): exact id first,
        then by number of events."""
        with self._lock:
            self._current()
            q = query.strip().lower()
            pos = self.model.items_.position
            hits = [i for i, f in self._facts.items() if q in f[C.TITLE].lower() or q == i.lower()]
            counts = {i: int(self._item_events[pos(i)]) for i in hits}
            hits.sort(key=lambda i: (i.lower() != q, -counts[i], self._facts[i][C.TITLE]))
            return [{C.ITEM_ID: i, **self._facts[i], "events": counts[i]} for i in hits[:limit]]

    def context_values(self) -> dict[str, Any]:
        """The context values of recent events, and what the page's hints quote (behind a
        key, unlike /healthz: the examples hold a user id)."""
        with self._lock:
            self._current()
            return {
                **{
                    col: sorted(v for v in self._pop_ctx[col][0] if v)
                    if col in self._pop_ctx
                    else []
                    for col in C.CONTEXT_COLUMNS
                },
                "item_noun": self.item_noun,
                "examples": self._examples(),
            }

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "model_version": self.version,
                "users": len(self._user_ids),
                "items": len(self.model.items_),
                "events": len(self._log),
                "live_events": self._log.live,
            }

    def _examples(self) -> dict[str, Any]:
        """What the page's hints quote from this catalogue instead of MovieLens words: a user
        id, the most-chosen item's title and the two most common genres."""
        if not self._user_ids:
            return {"user": None, "title": None, "genres": []}
        counts = np.asarray(self._item_events)
        top = str(self.model.items_.ids[int(np.argmax(counts))]) if counts.size else None
        if self._common_genres is None:  # a pass over the catalogue: once per catalogue
            genres = pd.Series([g for f in self._facts.values() for g in f[C.GENRES]], dtype=object)
            self._common_genres = [str(g) for g in genres.value_counts().index[:2]]
        return {
            "user": self._user_ids[0],
            "title": self._facts.get(top, {}).get(C.TITLE) if top is not None else None,
            "genres": self._common_genres,
        }

    def event_log(self) -> pd.DataFrame:
        """Every event the model holds (training and live, deleted users gone; dislikes are
        kept apart and not in it): user id, timestamp, event — for the Dashboard's counts."""
        cols = [C.USER_ID, C.TIMESTAMP, C.EVENT]
        with self._lock:
            return self._log.frame()[cols].reset_index(drop=True)
