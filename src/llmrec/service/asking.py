"""The live model's requests in words (``GET /v1/recommendations?q=``, ``llmrec recommend
--query``): the request's hard constraints filter the catalogue, its intent and anchors score
it by text vectors, and a known user's own scores blend in (``query.answer``). A mixin of
``LiveModel``."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from llmrec.models.base import Recommender
from llmrec.query.answer import answer, index_for
from llmrec.query.helper import GenreReader
from llmrec.query.parse import ParsedQuery
from llmrec.query.refine import follow_up, from_state, to_state
from llmrec.query.score import BlendWeights, QueryIndex

if TYPE_CHECKING:
    from llmrec.service.listing import Recommended


@dataclass(frozen=True)
class Answer:
    query: ParsedQuery
    items: list[Recommended]
    chips: list[dict[str, str]] = field(default_factory=list)  # the parsed constraints
    reason: str | None = None  # why the list is empty
    state: dict[str, Any] = field(default_factory=dict)  # what a follow-up refines


class Asking:
    model: Recommender
    _lock: threading.RLock
    _user_pos: dict[str, int]
    _pop: np.ndarray
    _qindex: QueryIndex | None
    query_weights: BlendWeights = BlendWeights()
    ask_llm: bool
    item_noun: str
    explanations: Any  # service.explanations.Explanations: its explainer's LLM, or None

    def _current(self, user_id: str | None = None) -> None:
        raise NotImplementedError

    def _blocked(self, user_id: str) -> set[str]:
        raise NotImplementedError

    def _item_rows(self) -> pd.DataFrame:
        raise NotImplementedError

    def ask(
        self,
        user_id: str,
        text: str,
        k: int,
        state: Mapping[str, Any] | None = None,
        remove: Iterable[Mapping[str, str]] = (),
    ) -> Answer:
        """Top ``k`` for a request in words, blended with ``user_id``'s own scores when the
        model knows the user (a user without events gets the request and popularity).
        ``state``: the conversation so far (``Answer.state`` of the previous turn), which
        ``text`` refines; ``remove``: chips taken off."""
        from llmrec.service.listing import Recommended

        with self._lock:
            self._current(user_id)
            m = self.model
            if self._qindex is None or len(self._qindex.ids) != len(m.items_):
                self._qindex = index_for(m, self._item_rows(), self._pop)
                llm = self.explanations.explainer.llm if self.ask_llm else None
                if llm is not None:
                    self._qindex.reader = GenreReader(llm, self._qindex.genres, self.item_noun)
            index = self._qindex
            index.popularity = self._pop  # recent popularity, as cold-start lists use
            blocked = m.items_.index(sorted(self._blocked(user_id)))
            u = self._user_pos.get(user_id)
            previous, shown = from_state(state) if state else (None, [])
            remove = list(remove)
            q = follow_up(index, text, previous, shown, remove) if state or remove else (
                index.parse(text)
            )  # fmt: skip
            r = answer(m, index, q, u, k, blocked[blocked >= 0], self.query_weights)
            source = "query + history" if r.personal else "query"
            items = [
                Recommended(
                    str(index.ids[i]),
                    float(s),
                    index.titles[index.ids[i]],
                    explanation=why,
                    source=source,
                    explanation_source="query",
                )  # fmt: skip
                for i, s, why in zip(r.items, r.scores, r.why, strict=True)
            ]
            shown = [i.item_id for i in items]
            return Answer(r.query, items, r.chips(index), r.reason, to_state(r.query, shown))


def answer_json(answer: Answer) -> dict[str, Any]:
    """The ``query`` part of a response: what was understood, never the raw text."""
    out: dict[str, Any] = {"constraints": answer.chips, "intent": answer.query.intent}
    if answer.reason:
        out["reason"] = answer.reason
    return out
