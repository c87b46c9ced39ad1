"""A request in words -> hard constraints and a soft intent (docs/ask.md).

Deterministic and backed by the catalogue's own vocabulary: its genres (with plurals and a few
common synonyms), its titles (after "like", "similar to", "not"), its years (decades, ranges,
"before"/"after"), and the values of its other text columns (an author, a publisher). What is
left once those are taken out is the soft intent ("a light space adventure"), matched by text
vectors. The query is data: it is normalised, length-limited by the caller, and never run.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from llmrec.data import columns as C
from llmrec.query.fuzzy import FuzzyTable

MAX_QUERY_CHARS = 500
MAX_TITLE_TOKENS = 12

# ways to name one genre: a catalogue genre that is any of them is reached by all of them
SYNONYMS = (
    ("sci fi", "science fiction", "scifi"),
    ("children", "childrens", "kids", "kid", "family"),
    ("animation", "animated", "cartoon", "cartoons"),
    ("romance", "romantic"),
    ("horror", "scary"),
    ("film noir", "noir"),
    ("documentary", "documentaries"),
)
NEGATORS = frozenset(
    "no not without except excluding exclude nothing non never avoid minus less".split()
)
ANCHOR_CUES = (("more", "like"), ("similar", "to"), ("such", "as"), ("like",), ("resembling",))
_DECADE_WORDS = {
    "twenties": 1920, "thirties": 1930, "forties": 1940, "fifties": 1950, "sixties": 1960,
    "seventies": 1970, "eighties": 1980, "nineties": 1990, "noughties": 2000,
}  # fmt: skip
# words that say nothing about what is wanted once the constraints are out
FILLER = frozenset(
    """a an the and or of from in on for to with me my i we us want wanted would like love
    something anything some any one ones show give find recommend recommendations please
    more less very really that which is are be it its this these those good great nice
    movie movies film films book books item items article articles title titles by from
    made released set era decade years year s but also actually instead fine ok okay now
    just maybe then too""".split()
)
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
_CONTROL = re.compile(r"[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def clean(text: str) -> str:
    """NFKC, no control or bidirectional-override characters, single spaces."""
    text = unicodedata.normalize("NFKC", str(text))
    return " ".join(_CONTROL.sub(" ", text).split())


def tokens(text: str) -> list[str]:
    """Lower-case word tokens without accents; an apostrophe joins ("children's")."""
    text = unicodedata.normalize("NFKD", text.lower().replace("'", "").replace("\u2019", ""))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _TOKEN.findall(text)


def stem(token: str) -> str:
    """A plural's singular, enough for genre names ("comedies", "thrillers", "children")."""
    if token.endswith("ies") and len(token) > 4:
        return token[:-3] + "y"
    if token.endswith("s") and len(token) > 3 and not token.endswith("ss"):
        return token[:-1]
    return token


def title_keys(title: str) -> list[tuple[str, ...]]:
    """The token forms a title is asked for by: as written, with a trailing ", The" moved to
    the front, and without its leading article."""
    base = re.sub(r"\s*\(\d{4}\)\s*$", "", str(title))
    toks = tokens(base)
    forms = [tuple(toks)]
    m = re.match(r"^(.*),\s*(the|a|an|la|le|les|il|el|der|die|das)$", base.strip(), re.I)
    if m:
        forms.append(tuple(tokens(f"{m.group(2)} {m.group(1)}")))
        forms.append(tuple(tokens(m.group(1))))
    if len(toks) > 1 and toks[0] in ("the", "a", "an"):
        forms.append(tuple(toks[1:]))
    return [f for f in dict.fromkeys(forms) if f]


@dataclass(frozen=True)
class Constraints:
    """What every returned item must satisfy."""

    year_min: int | None = None
    year_max: int | None = None
    genres: tuple[str, ...] = ()  # every one of them (any one of them when ``any_genre``)
    any_genre: bool = False
    not_genres: tuple[str, ...] = ()
    like: tuple[str, ...] = ()  # anchor item ids: never returned themselves
    not_items: tuple[str, ...] = ()
    attributes: tuple[tuple[str, str], ...] = ()  # (column, value) pairs, each required

    def chips(self, titles: dict[str, str]) -> list[dict[str, str]]:
        """One removable chip per constraint, as the web page shows them."""
        out = []
        if self.year_min is not None or self.year_max is not None:
            lo, hi = self.year_min, self.year_max
            text = f"{lo}–{hi}" if lo and hi else f"from {lo}" if lo else f"until {hi}"
            out.append({"kind": "years", "value": text})
        out += [{"kind": "genre", "value": g} for g in self.genres]
        out += [{"kind": "not-genre", "value": g} for g in self.not_genres]
        out += [{"kind": "like", "value": titles.get(i, i), "item_id": i} for i in self.like]
        out += [{"kind": "not", "value": titles.get(i, i), "item_id": i} for i in self.not_items]
        out += [{"kind": col, "value": v} for col, v in self.attributes]
        return out

    @property
    def empty(self) -> bool:
        return self == Constraints()


@dataclass(frozen=True)
class ParsedQuery:
    text: str  # the cleaned query
    constraints: Constraints = field(default_factory=Constraints)
    intent: str = ""  # the words left for the text match ("" when nothing is)


class Vocabulary:
    """The catalogue's words a query is read against. ``popularity`` breaks title ties."""

    def __init__(self, items: pd.DataFrame, popularity: np.ndarray | None = None) -> None:
        ids = items[C.ITEM_ID].astype(str).to_numpy()
        pop = np.zeros(len(ids)) if popularity is None else np.asarray(popularity, float)
        self.genres: dict[tuple[str, ...], str] = {}
        if C.GENRES in items:
            for gs in items[C.GENRES]:
                if isinstance(gs, list | tuple | np.ndarray):
                    for g in gs:
                        self.genres.setdefault(tuple(stem(t) for t in tokens(str(g))), str(g))
        for group in SYNONYMS:
            keys = [tuple(stem(t) for t in tokens(word)) for word in group]
            genre = next((self.genres[k] for k in keys if k in self.genres), None)
            for k in keys if genre is not None else ():
                self.genres.setdefault(k, genre)
        self.titles: dict[tuple[str, ...], str] = {}
        best: dict[tuple[str, ...], float] = {}
        if C.TITLE in items:
            for i, t, p in zip(ids, items[C.TITLE], pop, strict=True):
                for key in title_keys(t):  # the most popular item of a shared title wins
                    if key not in best or p > best[key]:
                        best[key], self.titles[key] = p, i
        self.attributes: dict[tuple[str, ...], tuple[str, str]] = {}
        for col in items.columns:
            if col in (C.ITEM_ID, C.TITLE, C.GENRES, C.YEAR, "description"):
                continue
            values = items[col].dropna()
            if values.map(lambda v: isinstance(v, str)).all() and values.nunique() < len(ids):
                for v in values.unique():
                    key = tuple(tokens(v))
                    if 0 < len(key) <= 6:
                        self.attributes.setdefault(key, (str(col), str(v)))
        # typos of genres and of values of two words or more; never a word the titles use
        self.fuzzy_genres = FuzzyTable(self.genres)
        self.fuzzy_attributes = FuzzyTable(k for k in self.attributes if len(k) >= 2)
        self.title_words = frozenset(w for key in self.titles for w in key)  # read above
        years = pd.to_numeric(items.get(C.YEAR, pd.Series(dtype=float)), errors="coerce")
        years = years.dropna()
        # "the 20s": the century most of the catalogue is from
        self.century = 2000 if len(years) and float(years.median()) >= 2000 else 1900


def parse(text: str, vocab: Vocabulary) -> ParsedQuery:
    """``text`` -> constraints and intent; unknown words stay in the intent."""
    text = clean(text)[:MAX_QUERY_CHARS]
    words = tokens(text)
    used = [False] * len(words)
    c = Constraints()
    c = _anchors(words, used, vocab, c)
    c = _years(words, used, vocab, c)
    c = _genres(words, used, vocab, c)
    c = _attributes(words, used, vocab, c)
    # typos: what the exact passes left, read again a few edits from the vocabulary
    c = _genres(
        words, used, vocab, c, _near(words, used, vocab, vocab.fuzzy_genres, vocab.genres, _stems)
    )
    c = _attributes(
        words, used, vocab, c, _near(words, used, vocab, vocab.fuzzy_attributes, vocab.attributes)
    )
    # a cue or negator left without its object says nothing on its own
    intent = [w for w, u in zip(words, used, strict=True) if not u and w not in FILLER]
    intent = [w for w in intent if w not in NEGATORS and w not in ("similar", "such", "as")]
    return ParsedQuery(text, c, " ".join(intent))


def _negated(words: Sequence[str], used: Sequence[bool], start: int) -> int | None:
    """The index of a negator among the 3 words before ``start`` (none past a used word)."""
    for j in range(start - 1, max(start - 4, -1), -1):
        if used[j]:
            return None
        if words[j] in NEGATORS:
            return j
    return None


def _mark(used: list[bool], lo: int, hi: int) -> None:
    for j in range(lo, hi):
        used[j] = True


def _longest(
    words: Sequence[str], used: Sequence[bool], start: int, table: dict, n_max: int, key=tuple
) -> tuple[int, object] | None:
    """The longest span from ``start`` whose key is in ``table``: (its end, the value)."""
    for n in range(min(n_max, len(words) - start), 0, -1):
        if any(used[start : start + n]):
            continue
        k = key(words[start : start + n])
        if k in table:
            return start + n, table[k]
    return None


def _anchors(words: list[str], used: list[bool], vocab: Vocabulary, c: Constraints) -> Constraints:
    like, unlike = list(c.like), list(c.not_items)
    i = 0
    while i < len(words):
        cue = next((q for q in ANCHOR_CUES if tuple(words[i : i + len(q)]) == q), None)
        negated = cue is None and words[i] in ("not", "except", "without")
        if cue is None and not negated:
            i += 1
            continue
        start = i + (len(cue) if cue else 1)
        hit = _longest(words, used, start, vocab.titles, MAX_TITLE_TOKENS)
        genre = _longest(words, used, start, vocab.genres, 3, key=lambda w: tuple(map(stem, w)))
        if hit is None or (genre is not None and genre[0] >= hit[0]):
            i += 1  # a genre ("not horror") is read by _genres
            continue
        end, item = hit
        (unlike if negated else like).append(str(item))
        _mark(used, i, end)
        i = end
    return replace(c, like=tuple(dict.fromkeys(like)), not_items=tuple(dict.fromkeys(unlike)))


_ONE_WORD_CUES = frozenset(("before", "pre", "after", "post", "since", "until", "till"))
_TWO_WORD_CUES = frozenset(
    (("older", "than"), ("prior", "to"), ("newer", "than"), ("later", "than"))
)
_RANGE = re.compile(r"^(1[89]\d\d|20\d\d)$")
_DECADE = re.compile(r"^(?:(1[89]|20)(\d)0|(\d)0)s$")


def _years(words: list[str], used: list[bool], vocab: Vocabulary, c: Constraints) -> Constraints:
    lo, hi = c.year_min, c.year_max
    like = list(c.like)

    def year(j: int) -> int | None:
        if 0 <= j < len(words) and not used[j] and _RANGE.match(words[j]):
            return int(words[j])
        return None

    i = 0
    while i < len(words):
        w = words[i]
        m = _DECADE.match(w) if not used[i] else None
        decade = None
        if m:
            decade = (
                int(m.group(1) + m.group(2) + "0")
                if m.group(1)
                else vocab.century + int(m.group(3)) * 10
            )
            if not m.group(1) and vocab.century == 1900 and int(m.group(3)) < 2:
                decade += 100  # "the 00s", "the 10s"
        elif w in _DECADE_WORDS and not used[i]:
            decade = _DECADE_WORDS[w]
        if decade is not None:
            lo, hi = _narrow(lo, hi, decade, decade + 9)
            _mark(used, i, i + 1)
            i += 1
            continue
        y = year(i)
        if y is None:
            i += 1
            continue
        prev = words[i - 1] if i else ""
        prev2 = tuple(words[max(i - 2, 0) : i])
        nxt = words[i + 1] if i + 1 < len(words) else ""
        y2 = year(i + 2) if nxt in ("to", "and", "until", "till", "through") else None
        if y2 is not None:  # 1980 to 1990, between 1980 and 1990
            lo, hi = _narrow(lo, hi, min(y, y2), max(y, y2))
            _mark(used, max(i - 1, 0) if prev == "between" else i, i + 3)
            i += 3
            continue
        cue = 2 if prev2 in _TWO_WORD_CUES else 1 if prev in _ONE_WORD_CUES else 0
        title = _longest(words, used, i, vocab.titles, MAX_TITLE_TOKENS) if not cue else None
        if title is not None and title[0] >= i + 2:  # "2001: a space odyssey": a title
            like.append(str(title[1]))  # named without a cue: what the user means by it
            _mark(used, i, title[0])
            i = title[0]
            continue
        if prev in ("before", "pre") or prev2 in (("older", "than"), ("prior", "to")):
            lo, hi = _narrow(lo, hi, None, y - 1)
        elif prev in ("after", "post") or prev2 in (("newer", "than"), ("later", "than")):
            lo, hi = _narrow(lo, hi, y + 1, None)
        elif prev == "since":
            lo, hi = _narrow(lo, hi, y, None)
        elif prev in ("until", "till"):
            lo, hi = _narrow(lo, hi, None, y)
        else:
            lo, hi = _narrow(lo, hi, y, y)
        _mark(used, max(i - cue, 0), i + 1)
        i += 1
    return replace(c, year_min=lo, year_max=hi, like=tuple(dict.fromkeys(like)))


def _narrow(lo: int | None, hi: int | None, a: int | None, b: int | None) -> tuple:
    """Two year conditions both hold (a later one can only narrow the range)."""
    lo = a if lo is None else lo if a is None else max(lo, a)
    hi = b if hi is None else hi if b is None else min(hi, b)
    return lo, hi


# where a span starting at word i names a table's value: (the span's end, the value) or None
Finder = Callable[[int], "tuple[int, object] | None"]


def _genres(
    words: list[str],
    used: list[bool],
    vocab: Vocabulary,
    c: Constraints,
    find: Finder | None = None,
) -> Constraints:
    """Genres wanted and (after a negator) excluded; ``find``: exact spans by default."""
    find = find or (lambda i: _longest(words, used, i, vocab.genres, 3, key=_stems))
    want, avoid = list(c.genres), list(c.not_genres)
    joined_by_or = c.any_genre
    i = 0
    while i < len(words):
        hit = None if used[i] else find(i)
        if hit is None:
            i += 1
            continue
        end, genre = hit
        neg = _negated(words, used, i)
        if neg is not None:
            avoid.append(str(genre))
            _mark(used, neg, end)
        else:
            joined_by_or |= bool(want) and "or" in words[max(i - 2, 0) : i]
            want.append(str(genre))
            _mark(used, i, end)
        i = end
    avoid = [g for g in dict.fromkeys(avoid)]
    want = [g for g in dict.fromkeys(want) if g not in avoid]
    return replace(c, genres=tuple(want), not_genres=tuple(avoid), any_genre=joined_by_or)


def _stems(words: Iterable[str]) -> tuple[str, ...]:
    return tuple(stem(w) for w in words)


def _attributes(
    words: list[str],
    used: list[bool],
    vocab: Vocabulary,
    c: Constraints,
    find: Finder | None = None,
) -> Constraints:
    """Values of the catalogue's other text columns: two words or more anywhere, one word
    only after "by" (an author); ``find``: exact spans by default."""
    find = find or (lambda i: _longest(words, used, i, vocab.attributes, 6))
    found = list(c.attributes)
    i = 0
    while i < len(words):
        hit = None if used[i] else find(i)
        if hit is None or (hit[0] - i < 2 and (i == 0 or words[i - 1] != "by")):
            i += 1
            continue
        end, value = hit
        found.append(value)  # type: ignore[arg-type]
        _mark(used, max(i - 1, 0) if i and words[i - 1] == "by" else i, end)
        i = end
    return replace(c, attributes=tuple(dict.fromkeys(found)))


def _near(
    words: list[str],
    used: list[bool],
    vocab: Vocabulary,
    fuzzy: FuzzyTable,
    table: dict,
    key: Callable[[Sequence[str]], tuple[str, ...]] = tuple,
) -> Finder:
    """A ``Finder`` for typos (``query.fuzzy``): the longest span of up to three unread words,
    none of them filler and one at least not a word of the titles, a few edits from a key."""

    def find(i: int) -> tuple[int, object] | None:
        for n in (3, 2, 1):
            span = words[i : i + n]
            if len(span) < n or any(used[i : i + n]):
                continue
            if any(w in FILLER or w in NEGATORS for w in span):
                continue
            if all(w in vocab.title_words for w in span):  # it means what it says
                continue
            found = fuzzy.find(key(span))
            if found is not None:
                return i + n, table[found]
        return None

    return find
