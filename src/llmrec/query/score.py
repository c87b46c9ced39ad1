"""Score a catalogue for a parsed request: hard constraints filter, the soft intent and the
anchors score by text vectors, and the user's personal scores blend in (docs/ask.md).

Each signal becomes a rank-based score over the catalogue before blending (log-rank by
default), so a ranker's scores, EASE's and cosines mix on one scale; the transform and the
weights are chosen on validation (``make bench-query``) and ship as ``BlendWeights()``'s
defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from llmrec.data import columns as C
from llmrec.encoders import TextEncoder, encode
from llmrec.encoders.onnx import fast_twin
from llmrec.query.helper import GenreReader
from llmrec.query.parse import Constraints, ParsedQuery, Vocabulary, parse


@dataclass(frozen=True)
class BlendWeights:
    """``personal``: the share of the user's own scores (the rest is the request's);
    ``popularity``: within the request's share, popularity beside the text match, with a
    user's scores and without (``popularity_alone``). The defaults were chosen on the
    validation half of ``make bench-query`` (ml-100k and ml-1m chose the same)."""

    personal: float = 0.5
    popularity: float = 0.0
    popularity_alone: float = 0.4
    transform: str = "log-rank"  # how each signal's scores become one scale (TRANSFORMS)


def percentile(x: np.ndarray) -> np.ndarray:
    """Ranks in (0, 1], ties averaged; NaN and -inf rank lowest."""
    x = np.where(np.isfinite(x), x, -np.inf)
    return rankdata(x, method="average") / max(len(x), 1)


def log_rank(x: np.ndarray) -> np.ndarray:
    """1 - log(rank) / log(n), rank 1 the best: the head of a list keeps its spread, which a
    percentile flattens (the top 10 of 3,000 items all sit above 0.997)."""
    n = max(len(x), 2)
    rank = n + 1 - percentile(x) * n  # 1 = best, ties averaged
    return 1 - np.log(rank) / np.log(n)


TRANSFORMS = {"percentile": percentile, "log-rank": log_rank}


def blend(
    personal: np.ndarray | None,
    intent: np.ndarray | None,
    popularity: np.ndarray,
    allowed: np.ndarray,
    weights: BlendWeights,
) -> np.ndarray:
    """The final scores; -inf where the constraints rule an item out. Without an intent the
    request's part is popularity among the allowed; without a user, the request alone."""
    f = TRANSFORMS[weights.transform]
    pop = f(popularity)
    a = weights.popularity if personal is not None else weights.popularity_alone
    request = pop if intent is None else (1 - a) * f(intent) + a * pop
    out = request if personal is None else (
        weights.personal * f(personal) + (1 - weights.personal) * request
    )  # fmt: skip
    return np.where(allowed, out, -np.inf)


class QueryIndex:
    """The catalogue as requests see it: facts per item position, its text vectors and the
    encoder that made them (``None``: constraints, anchors by ``similar`` and popularity)."""

    def __init__(
        self,
        items: pd.DataFrame,
        popularity: np.ndarray,
        vectors: np.ndarray | None = None,
        encoder: TextEncoder | None = None,
        similar: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        """``items``: one row per item position (``item_id``, ``title`` and what else the
        catalogue has); ``similar(idx)``: (len(idx), n) similarities when there are no
        vectors (co-occurrence)."""
        self.ids = items[C.ITEM_ID].astype(str).to_numpy()
        self.position = {i: n for n, i in enumerate(self.ids)}
        self.popularity = np.asarray(popularity, dtype=float)
        self.vocab = Vocabulary(items, self.popularity)
        # the free words of a request are one short text, encoded while the user waits
        self.encoder = None if encoder is None else fast_twin(encoder)
        self.vectors, self._similar = vectors, similar
        self._vectors_seen: dict[str, np.ndarray] = {}  # insertion order = recency
        self.reader: GenreReader | None = None  # query.helper, when asked for
        titles = items[C.TITLE] if C.TITLE in items else items[C.ITEM_ID]
        self.titles = dict(zip(self.ids, titles.astype(str), strict=True))
        years = items[C.YEAR] if C.YEAR in items else pd.Series(np.nan, index=items.index)
        self.years = pd.to_numeric(years, errors="coerce").to_numpy(dtype=float)
        self._genres: dict[str, np.ndarray] = {}
        if C.GENRES in items:
            for n, gs in enumerate(items[C.GENRES]):
                if isinstance(gs, list | tuple | np.ndarray):
                    for g in gs:
                        self._genres.setdefault(str(g), np.zeros(len(self.ids), bool))[n] = True
        self._columns = {
            col: items[col].astype(str).to_numpy()
            for col in {col for col, _ in self.vocab.attributes.values()}
        }

    @property
    def genres(self) -> list[str]:
        """The catalogue's genres, sorted."""
        return sorted(self._genres)

    def parse(self, text: str) -> ParsedQuery:
        q = parse(text, self.vocab)
        if self.reader is not None:  # the optional LLM reader of the words left (checked)
            q = self.reader.read(q, lambda r: int(self.allowed(r.constraints).sum()))
        return q

    def allowed(self, c: Constraints) -> np.ndarray:
        """Items that satisfy every hard constraint (an unknown year fails a year range)."""
        n = len(self.ids)
        ok = np.ones(n, bool)
        if c.year_min is not None:
            ok &= self.years >= c.year_min
        if c.year_max is not None:
            ok &= self.years <= c.year_max
        none = np.zeros(n, bool)
        if c.genres:
            has = [self._genres.get(g, none) for g in c.genres]
            ok &= np.logical_or.reduce(has) if c.any_genre else np.logical_and.reduce(has)
        for g in c.not_genres:
            ok &= ~self._genres.get(g, none)
        for col, v in c.attributes:
            ok &= self._columns[col] == v
        for i in (*c.like, *c.not_items):
            if i in self.position:
                ok[self.position[i]] = False
        return ok

    def intent(self, q: ParsedQuery) -> np.ndarray | None:
        """Similarity to the request: the mean of the text match of its intent words and the
        closest anchor; ``None`` when the request has neither."""
        parts = []
        if q.intent and self.vectors is not None and self.encoder is not None:
            parts.append(self.vectors @ self._vector(q.intent))
        anchors = np.array([self.position[i] for i in q.constraints.like if i in self.position])
        if len(anchors):
            if self.vectors is not None:
                parts.append((self.vectors[anchors] @ self.vectors.T).max(axis=0))
            elif self._similar is not None:
                parts.append(self._similar(anchors).max(axis=0))
        return np.mean(parts, axis=0) if parts else None

    def _vector(self, text: str) -> np.ndarray:
        """The intent's vector; the latest ones are kept (a follow-up that adds no words
        reuses its conversation's intent), in memory only."""
        v = self._vectors_seen.pop(text, None)
        if v is None:
            v = encode(self.encoder, [text], cache=None, progress=False)[0]  # type: ignore[arg-type]
        self._vectors_seen[text] = v
        while len(self._vectors_seen) > 1024:
            self._vectors_seen.pop(next(iter(self._vectors_seen)))
        return v

    def why(self, n: int, q: ParsedQuery, personal: bool) -> str:
        """Why item position ``n`` answers ``q``: the anchor, the constraint, or history."""
        c = q.constraints
        bits = []
        if c.like:
            bits.append("like " + ", ".join(self.titles.get(i, i) for i in c.like[:2]))
        if c.genres:
            bits.append(" or ".join(c.genres) if c.any_genre else " + ".join(c.genres))
        if c.year_min is not None or c.year_max is not None:
            y = self.years[n]
            bits.append(f"from {int(y)}" if np.isfinite(y) else "in the years asked")
        if c.not_genres:
            bits.append("no " + ", ".join(c.not_genres))
        bits += [f"{col}: {v}" for col, v in c.attributes]
        if q.intent:
            bits.append(f'matches "{q.intent[:60]}"')
        if personal:
            bits.append("your history")
        return "; ".join(bits) or "popular"
