"""Explanations within a time budget: the API never waits longer than ``budget`` seconds.

Every explanation not cached yet goes to one background thread (the LLM runs one call at a
time anyway). The answer takes what is ready when the budget ends; the others get their
template explanation, marked ``template``, and the LLM's text is cached when it completes, so
the next request for the same list has it.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from llmrec.data import columns as C
from llmrec.llm.explain import LIKED, Evidence, Explainer, Explanation, Kind, template
from llmrec.llm.runtime import LanguageModel, LazyLM, LLMConfig, LLMUnavailable, check_available
from llmrec.llm.safety import natural_title
from llmrec.models.base import Recommender
from llmrec.service.eventlog import EventLog
from llmrec.text.templates import user_text

log = logging.getLogger(__name__)


class Explanations:
    def __init__(self, explainer: Explainer, budget: float = 1.5, max_pending: int = 256) -> None:
        self.explainer, self.budget, self.max_pending = explainer, budget, max_pending
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="llmrec-explain")
        self._pending: dict[tuple[str, Evidence], Future[Explanation]] = {}
        self._closed = False
        self._lock = threading.RLock()  # a future done at once calls _done in get()

    def get(
        self, user_id: str | None, evidence: list[Evidence], kind: Kind = "explanation"
    ) -> list[Explanation]:
        futures: list[Future[Explanation] | Explanation] = []
        with self._lock:
            for e in evidence:
                hit = self.explainer.cached(e, kind)
                if hit is None and not self.explainer.uses_llm(e):  # a template: no thread hop
                    hit = self.explainer.explain(user_id, e, kind)
                if hit is not None:
                    futures.append(hit)
                    continue
                key = (kind, e)
                f = self._pending.get(key)
                if f is None and len(self._pending) < self.max_pending and not self._closed:
                    f = self._pool.submit(self.explainer.explain, user_id, e, kind)
                    self._pending[key] = f
                    f.add_done_callback(lambda _, key=key: self._done(key))
                futures.append(f if f is not None else Explanation(template(e, kind), "template"))
        waiting = [f for f in futures if isinstance(f, Future)]
        if waiting:
            wait(waiting, timeout=self.budget)
        out = []
        for e, f in zip(evidence, futures, strict=True):
            if isinstance(f, Explanation):
                out.append(f)
            elif f.done() and not f.cancelled() and f.exception() is None:
                out.append(f.result())
            else:  # still running (or failed): the template now, the LLM's text next time
                out.append(Explanation(template(e, kind), "template", ("over budget",)))
        return out

    def forget(self) -> None:
        """Drop every cached text (a user was deleted: their history may be quoted)."""
        self.explainer.clear()

    def _done(self, key: tuple[str, Evidence]) -> None:
        with self._lock:
            self._pending.pop(key, None)

    def close(self) -> None:
        """After a reload: requests still holding the old model get templates."""
        with self._lock:
            self._closed = True
            self._pool.shutdown(wait=False, cancel_futures=True)


def language_model(choice: str) -> LanguageModel | None:
    """The bundled instruct model, loaded on the first explanation, or None (templates) when
    it is off or, under "auto", not installed; a runtime named explicitly must be there."""
    if choice == "off":
        return None
    config = LLMConfig(runtime="transformers" if choice == "auto" else choice)  # type: ignore[arg-type]
    try:
        check_available(config)
        return LazyLM(config)
    except LLMUnavailable as e:
        if choice != "auto":
            raise
        log.warning("explanations use templates: %s", e)
        return None


class EvidenceFor:
    """What an explanation may rest on, read from the live model's state: a mixin of
    ``LiveModel`` (called under its lock)."""

    model: Recommender
    item_noun: str
    _facts: dict[str, dict[str, Any]]
    _profiles: dict[str, dict[str, Any]]
    _user_pos: dict[str, int]
    _log: EventLog

    def _vectors(self) -> np.ndarray | None:
        raise NotImplementedError

    def _title_of(self, item_id: str) -> str:
        raise NotImplementedError

    def _evidence(self, user_id: str, item_id: str) -> Evidence:
        """What an explanation of ``item_id`` for ``user_id`` may rest on: the history item
        most similar to it by text (the most recent one for models without text), its
        rating, and their shared genres; only popularity for a user without history."""
        m = self.model
        i = m.items_.position(item_id)
        facts = self._facts.get(item_id, {})
        genres = tuple(facts.get(C.GENRES) or ())
        profile = self._profiles.get(user_id)
        base = Evidence(
            item_id,
            natural_title(self._title_of(item_id)),
            genres,
            profile=user_text(profile, []) if profile else "",
            noun=self.item_noun,
            about=facts.get("about") or "",
        )
        u = self._user_pos.get(user_id)
        history = m.history_[u].indices if u is not None else np.zeros(0, np.int64)
        history = history[history != i]
        if not len(history):
            return base
        vecs = self._vectors()
        if vecs is None:
            recent = m.recency_[u]
            keep = recent.indices != i
            j = int(recent.indices[keep][np.argmin(recent.data[keep])])
        else:
            j = int(history[np.argmax(vecs[history] @ vecs[i])])
        other = str(m.items_.ids[j])
        rating, liked = self._rating(u, other)
        other_genres = set(self._facts.get(other, {}).get(C.GENRES) or ())
        return replace(
            base,
            because_title=natural_title(self._title_of(other)),
            because_rating=rating,
            because_liked=liked,
            shared=tuple(g for g in genres if g in other_genres),
        )

    def _rating(self, u: int, item_id: str) -> tuple[float | None, bool]:
        """The user's latest rating of the item (None if unrated) and whether they liked it
        (a like event or a rating at or above ``LIKED``)."""
        rating, liked = None, False
        mine = self._log.users(np.array([u], dtype=np.int64))
        mine = mine[mine[C.ITEM_ID] == item_id]
        for e, v in zip(mine[C.EVENT], mine[C.VALUE], strict=True):
            if pd.notna(v) and e == "rate":
                rating = float(v)
            liked = liked or e == "like"
        return rating, liked or (rating is not None and rating >= LIKED)
