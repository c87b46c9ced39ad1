"""Follow-ups in a conversation: "more like the second one", "no horror", "older". A
follow-up is parsed like a request, then merged into the previous one: new genres and anchors
add, a negation removes what it names, a new year range replaces the old, "older"/"newer"
move the range relative to the list just shown, and chips the person removed are dropped."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from llmrec.query.parse import MAX_QUERY_CHARS, Constraints, ParsedQuery, clean, tokens
from llmrec.query.score import QueryIndex

ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "last": -1,
}  # fmt: skip
_ORDINAL = re.compile(
    r"(?<!\w)(?P<neg>(?:not|no|without|except|never)\s+(?:\w+\s+){0,2}?)?"
    r"(?P<the>the\s+)?(?:(?P<word>" + "|".join(ORDINALS) + r")|(?:number\s+|#\s*)(?P<num>\d{1,3})"
    r"|(?P<nth>\d{1,3})(?:st|nd|rd|th))"
    r"(?P<suffix>\s+(?:one|item|movie|film|book|article|title))?\b",
    re.I,
)
OLDER = frozenset(("older", "earlier", "classic", "classics"))
NEWER = frozenset(("newer", "recent", "later", "modern"))


def follow_up(
    index: QueryIndex,
    text: str,
    previous: ParsedQuery | None = None,
    shown: Sequence[str] = (),
    remove: Iterable[Mapping[str, str]] = (),
) -> ParsedQuery:
    """``text`` read as a follow-up to ``previous`` after the list ``shown`` (item ids, best
    first); ``remove``: chips ({kind, value}) the person took off."""
    text = clean(text)[:MAX_QUERY_CHARS]
    like, unlike = [], []

    def ordinal(m: re.Match[str]) -> str:
        n = ORDINALS[m["word"].lower()] if m["word"] else int(m["num"] or m["nth"])
        pointed = m["the"] or m["suffix"] or m["num"]  # "second" alone may be a title's word
        if pointed and shown and (n == -1 or 1 <= n <= len(shown)):
            (unlike if m["neg"] else like).append(shown[n if n == -1 else n - 1])
            return " "
        return m.group(0)  # no such position: the words stay

    rest = _ORDINAL.sub(ordinal, text)
    words = set(tokens(rest))
    new = index.parse(rest)
    c = new.constraints
    c = replace(c, like=(*c.like, *like), not_items=(*c.not_items, *unlike))
    if previous is not None:
        c = merge(previous.constraints, c)
    c = _relative_years(index, c, words, shown)
    for chip in remove:
        c = without(c, chip)
    intent = " ".join(w for w in new.intent.split() if w not in OLDER | NEWER | {"one", "ones"})
    if not intent and previous is not None:
        intent = previous.intent
    return ParsedQuery(text, c, intent)


def merge(old: Constraints, new: Constraints) -> Constraints:
    """The previous constraints updated by a follow-up's."""
    years = new.year_min is not None or new.year_max is not None
    not_genres = _union(old.not_genres, new.not_genres, drop=new.genres)
    genres = _union(old.genres, new.genres, drop=not_genres)
    not_items = _union(old.not_items, new.not_items, drop=new.like)
    return Constraints(
        year_min=new.year_min if years else old.year_min,
        year_max=new.year_max if years else old.year_max,
        genres=genres,
        any_genre=new.any_genre if new.genres else old.any_genre,
        not_genres=not_genres,
        like=_union(old.like, new.like, drop=not_items),
        not_items=not_items,
        attributes=_union(old.attributes, new.attributes, drop=()),
    )


def without(c: Constraints, chip: Mapping[str, str]) -> Constraints:
    """``c`` less the constraint a chip shows ({kind, value[, item_id]})."""
    kind, value = chip.get("kind"), chip.get("value")
    if kind == "years":
        return replace(c, year_min=None, year_max=None)
    if kind == "genre":
        return replace(c, genres=tuple(g for g in c.genres if g != value))
    if kind == "not-genre":
        return replace(c, not_genres=tuple(g for g in c.not_genres if g != value))
    item = chip.get("item_id")
    if kind == "like":
        return replace(c, like=tuple(i for i in c.like if i != item))
    if kind == "not":
        return replace(c, not_items=tuple(i for i in c.not_items if i != item))
    return replace(c, attributes=tuple(a for a in c.attributes if a != (kind, value)))


def _relative_years(
    index: QueryIndex, c: Constraints, words: set[str], shown: Sequence[str]
) -> Constraints:
    """ "older": before the middle year of the list shown; "newer": after it."""
    older, newer = bool(words & OLDER), bool(words & NEWER)
    if older == newer:
        return c
    years = [index.years[index.position[i]] for i in shown if i in index.position]
    years = [y for y in years if np.isfinite(y)]
    if not years:
        return c
    middle = int(np.median(years))
    if older:
        return replace(c, year_max=middle - 1, year_min=None)
    return replace(c, year_min=middle + 1, year_max=None)


def _union(a: tuple, b: tuple, drop: Iterable) -> tuple:
    gone = set(drop)
    return tuple(x for x in dict.fromkeys((*a, *b)) if x not in gone)


def to_state(q: ParsedQuery, shown: Sequence[str]) -> dict[str, Any]:
    """What a conversation keeps between turns (JSON)."""
    return {"constraints": asdict(q.constraints), "intent": q.intent, "shown": list(shown)}


def from_state(state: Mapping[str, Any]) -> tuple[ParsedQuery, list[str]]:
    raw = dict(state["constraints"])
    c = Constraints(
        year_min=raw.get("year_min"),
        year_max=raw.get("year_max"),
        genres=tuple(raw.get("genres", ())),
        any_genre=bool(raw.get("any_genre", False)),
        not_genres=tuple(raw.get("not_genres", ())),
        like=tuple(raw.get("like", ())),
        not_items=tuple(raw.get("not_items", ())),
        attributes=tuple(tuple(a) for a in raw.get("attributes", ())),
    )
    return ParsedQuery("", c, str(state.get("intent", ""))), [str(i) for i in state["shown"]]
