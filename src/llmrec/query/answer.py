"""Answer a request in words with a fitted model: what the service, the CLI and the Python
API (``llmrec.ask``) share."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from llmrec.data import columns as C
from llmrec.models.base import Recommender
from llmrec.models.content import text_part
from llmrec.query.parse import ParsedQuery
from llmrec.query.refine import follow_up, from_state, to_state
from llmrec.query.score import BlendWeights, QueryIndex, blend

EMPTY_CATALOGUE = "no item in the catalogue satisfies every constraint of the request"
EMPTY_FOR_USER = (
    "every item that satisfies the request is already in this user's history or excluded"
)


@dataclass(frozen=True)
class Ranked:
    query: ParsedQuery
    items: np.ndarray  # item positions, best first
    scores: np.ndarray
    why: list[str]  # per item: the constraint, the anchor, the user's history
    personal: bool  # the user's own scores took part
    reason: str | None = None  # why ``items`` is empty

    def chips(self, index: QueryIndex) -> list[dict[str, str]]:
        return self.query.constraints.chips(index.titles)


def item_rows(table: pd.DataFrame | None, ids: np.ndarray) -> pd.DataFrame:
    """The catalogue table in item-position order (an id it lacks gets its id as title)."""
    ids = np.asarray(ids).astype(str)
    if table is None:
        return pd.DataFrame({C.ITEM_ID: ids, C.TITLE: ids})
    t = table.assign(**{C.ITEM_ID: table[C.ITEM_ID].astype(str)})
    t = t.drop_duplicates(C.ITEM_ID, keep="last").set_index(C.ITEM_ID)
    out = t.reindex(pd.Index(ids, name=C.ITEM_ID)).reset_index()
    titles = out[C.TITLE] if C.TITLE in out else pd.Series(np.nan, index=out.index)
    out[C.TITLE] = titles.where(titles.notna(), out[C.ITEM_ID])
    return out


def index_for(
    model: Recommender, items: pd.DataFrame | None, popularity: np.ndarray | None = None
) -> QueryIndex:
    """The request index of a fitted model's catalogue: its text vectors and their encoder
    when a part of it has them (``content``, ``lm``, the ranker's text retrievers),
    co-occurrence for anchors otherwise; popularity = the users per item by default."""
    part = text_part(model)
    vectors = None if part is None else np.asarray(part.item_vectors_)
    encoder = None if part is None else part.text_encoder()
    history = model.history_
    if popularity is None:
        popularity = np.asarray((history > 0).sum(axis=0)).ravel().astype(float)

    def similar(idx: np.ndarray) -> np.ndarray:  # item-item cosine of who had them
        h = (history > 0).astype(np.float32).tocsc()
        co = (h[:, idx].T @ h).toarray()
        n = np.asarray(h.sum(axis=0)).ravel()
        return co / np.sqrt(np.maximum(np.outer(n[idx], n), 1e-12))

    rows = item_rows(items, model.items_.ids)
    return QueryIndex(rows, popularity, vectors, encoder, similar)


def answer(
    model: Recommender,
    index: QueryIndex,
    text: str | ParsedQuery,
    user_idx: int | None,
    k: int,
    exclude: Iterable[int] = (),
    weights: BlendWeights | None = None,
) -> Ranked:
    """Top ``k`` positions for ``text`` (or a request already read), blended with user
    ``user_idx``'s scores when the user has history; the user's history and ``exclude`` never
    come back."""
    q = index.parse(text) if isinstance(text, str) else text
    # the encoder first: run after a LightGBM ranker, it shares the 2 cores with OpenMP
    # threads still spinning (``llmrec serve`` sets OMP_WAIT_POLICY=PASSIVE for this)
    intent = index.intent(q)
    allowed = index.allowed(q.constraints)
    matching = bool(allowed.any())
    history = model.history_[user_idx].indices if user_idx is not None else np.zeros(0, int)
    personal = model.score(np.array([user_idx]))[0] if len(history) else None
    allowed[history] = False
    allowed[np.fromiter(exclude, dtype=np.int64)] = False
    scores = blend(personal, intent, index.popularity, allowed, weights or BlendWeights())
    top = np.argsort(-scores, kind="stable")[: min(k, int(allowed.sum()))]
    why = [index.why(int(i), q, personal is not None) for i in top]
    reason = None if len(top) else EMPTY_CATALOGUE if not matching else EMPTY_FOR_USER
    return Ranked(q, top, scores[top], why, personal is not None, reason)


@dataclass(frozen=True)
class Asked:
    """``llmrec.ask``'s answer: the list and how the request was read."""

    items: pd.DataFrame  # item_id, title, score, why; best first
    constraints: list[dict[str, str]]
    intent: str
    reason: str | None = None
    state: dict[str, Any] = field(default_factory=dict)  # what a follow-up refines


def ask(
    model: Recommender,
    text: str,
    user_id: str | None = None,
    k: int = 10,
    items: pd.DataFrame | None = None,
    previous: Asked | None = None,
    remove: Iterable[Mapping[str, str]] = (),
) -> Asked:
    """``answer`` by ids, for the Python API (the catalogue ``items`` gives the titles,
    genres and years the request is checked against); with ``previous``, ``text`` is a
    follow-up to it and ``remove`` the chips taken off."""
    index = index_for(model, items)
    u = None
    if user_id is not None:
        pos = model.users_.index([str(user_id)])[0]
        u = int(pos) if pos >= 0 else None  # an unknown user: the request alone
    q: str | ParsedQuery = text
    if previous is not None or remove:
        before, shown = from_state(previous.state) if previous else (None, [])
        q = follow_up(index, text, before, shown, remove)
    r = answer(model, index, q, u, k)
    ids = index.ids[r.items]
    table = pd.DataFrame(
        {
            C.ITEM_ID: ids,
            C.TITLE: [index.titles[i] for i in ids],
            "score": r.scores,
            "why": r.why,
        }
    )
    return Asked(table, r.chips(index), r.query.intent, r.reason, to_state(r.query, list(ids)))
