"""Checks on generated text before anyone sees it; a failed check means the template is used.

Rejected: URLs, e-mail addresses, phone numbers, chat-control tokens and control characters, a
value from another user's profile, a title-like mention that is not in the catalogue, text over
the length limit or repeating one word (a small model's degenerate output), a number or a claim
of reception or service (critics, awards, Netflix) that the given data does not hold, and text
that names none of the evidence it was given.
(Explainer adds: an unfinished sentence.)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_URL = re.compile(r"(?i)\b(?:https?://|ftp://|www\.)\S+|\b[\w-]+\.(?:com|org|net|io|co|ly|me)\b")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<!\w)\+?\(?\d{2,4}\)?(?:[\s.-]?\d){6,12}(?!\w)")
_YEAR = re.compile(r"\((\d{4})\)")
_QUOTED = re.compile(r"[\"“«]([^\"”»]{2,120})[\"”»]")
_ARTICLES = "the|a|an|les|la|le|il|das|der|die|el"
_ARTICLE = re.compile(rf"^(.*), ({_ARTICLES})$", re.IGNORECASE)
_LEADING = re.compile(rf"^({_ARTICLES}) (.*)$", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:[.,/]\d+)*")
# claims about reception that no field of ours holds: a small model invents them freely
# and services the data never names (a small model says "you watched it on Netflix")
CLAIMS = re.compile(
    r"(?i)\b(?:critic\w*|award\w*|oscar\w*|acclaim\w*|prais\w*|best-?sell\w*|netflix|hulu"
    r"|amazon|prime video|disney\+|hbo|youtube|spotify|imdb|rotten tomatoes)"
)
# a chat template's control tokens (ChatML, Llama, Mistral, Gemma) and control characters:
# never in a text we show, whoever wrote the words around them
CHAT_TOKENS = re.compile(
    r"(?i)<\|[^|>]{0,40}\|>|</?s>|\[/?INST\]|<</?SYS>>|<(?:start|end)_of_turn>"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# profile values that say nothing about a person (ml-100k's occupations include both)
PLACEHOLDERS = frozenset({"", "none", "other", "unknown", "n/a", "na", "-", "m", "f"})


def shown(text: str) -> str:
    """A catalogue string (a title, a genre) as it may appear inside a sentence we write:
    control characters, chat-control tokens, URLs, e-mail addresses and phone numbers taken
    out, spaces collapsed. Templates quote titles only through this."""
    for pattern in (_CONTROL, CHAT_TOKENS, _URL, _EMAIL, _PHONE):
        text = pattern.sub(" ", text)
    return " ".join(text.split())


def natural_title(title: str) -> str:
    """ "Godfather, The (1972)" as "The Godfather (1972)": how people (and models) write it."""
    year = _YEAR.search(title)
    body = _YEAR.sub("", title).strip() if year else title.strip()
    m = _ARTICLE.match(body)
    if not m:
        return title
    return f"{m.group(2)} {m.group(1)}" + (f" {year.group(0)}" if year else "")


def title_forms(title: str) -> set[str]:
    """Lower-case ways a title is written: with and without its year, "X, The" as "The X"."""
    t = " ".join(title.lower().split())
    body = _YEAR.sub("", t).strip()
    forms = {t, body}
    m = _ARTICLE.match(body)
    if m:
        forms.add(f"{m.group(2)} {m.group(1)}")
    m = _LEADING.match(body)
    if m:
        forms.add(f"{m.group(2)}, {m.group(1)}")
    return {f for f in forms if len(f) >= 2}


def mentions(text: str, title: str) -> bool:
    low = " ".join(text.lower().split())
    return any(_has_phrase(low, f) for f in title_forms(title))


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text))


def _phrases(text: str, longest: int) -> set[str]:
    """Every run of 1..``longest`` consecutive words of ``text``, space-joined."""
    w = re.findall(r"\w+", text)
    return {" ".join(w[i : i + n]) for n in range(1, longest + 1) for i in range(len(w) - n + 1)}


def _has_phrase(text: str, phrase: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text) is not None


_WORD = re.compile(r"[^\W\d_][\w'’-]*")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_POSSESSIVE = re.compile(r"['’]s?$")


def _bare(word: str) -> str:
    """A word without its possessive: "Park's" and "Schindler's" are Park and Schindler."""
    return _POSSESSIVE.sub("", word)


def _unsupported_name(text: str, own_low: str, title_words: set[str]) -> str | None:
    """The first capitalised word that does not open a sentence and that neither a field of
    the prompt nor a catalogue title holds: a name the model invented ("set in Paris",
    "directed by Kubrick")."""
    known = {_bare(w) for w in _WORD.findall(own_low)}
    for sentence in _SENTENCE.split(text):
        for word in _WORD.findall(sentence)[1:]:
            low = _bare(word.lower())
            if word[0].isupper() and low not in known and low not in title_words:
                return word
    return None


@dataclass(frozen=True)
class Rejection:
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.detail}"


class OutputChecker:
    """Knows the catalogue's titles and the users' profile values."""

    def __init__(
        self,
        titles: Iterable[str],
        profiles: Mapping[str, Mapping[str, object]] | None = None,
        max_chars: int = 220,
    ) -> None:
        self.max_chars = max_chars
        self._by_year: dict[str, set[str]] = {}
        self._forms: set[str] = set()
        self._title_words: set[str] = set()  # a name from a catalogue title is not invented
        self.add_titles(titles)
        # value (as its words) -> users holding it; only values that could identify someone
        self._values: dict[str, set[str]] = {}
        for user, fields in (profiles or {}).items():
            for key, value in fields.items():
                v = " ".join(str(value).lower().split())
                if v in PLACEHOLDERS or key == "age" or (v.isdigit() and len(v) < 5):
                    continue
                self._values.setdefault(_words(v), set()).add(str(user))
        self._longest = max((v.count(" ") + 1 for v in self._values), default=0)

    def add_titles(self, titles: Iterable[str]) -> None:
        for title in titles:
            forms = title_forms(title)
            self._forms |= forms
            self._title_words.update(_bare(w) for w in _WORD.findall(title.lower()))
            year = _YEAR.search(title)
            if year:
                self._by_year.setdefault(year.group(1), set()).update(forms)

    def forget(self, user_id: str) -> None:
        """Drop a deleted user's profile values."""
        for users in self._values.values():
            users.discard(user_id)
        self._values = {v: users for v, users in self._values.items() if users}

    def problems(
        self,
        text: str,
        user_id: str | None,
        grounds: Iterable[str] = (),
        own: Iterable[str] = (),
    ) -> list[Rejection]:
        """Every rule ``text`` breaks. ``grounds``: titles or attributes of which it must name
        at least one (empty: no grounding rule); ``own``: text the prompt held (the user's own
        data, the item's), which the output may repeat."""
        out: list[Rejection] = []
        if not text.strip():
            return [Rejection("empty", "no text")]
        if len(text) > self.max_chars:
            out.append(Rejection("length", f"{len(text)} characters > {self.max_chars}"))
        for rule, pattern in (
            ("url", _URL),
            ("email", _EMAIL),
            ("phone", _PHONE),
            ("chat-token", CHAT_TOKENS),
            ("control-character", _CONTROL),
        ):
            m = pattern.search(text)
            if m:
                out.append(Rejection(rule, m.group(0)))
        low = " ".join(text.lower().split())
        words = re.findall(r"\w{2,}", low)
        top = max(set(words), key=words.count) if words else ""
        if top and words.count(top) >= 4:
            out.append(Rejection("repetition", f"{top!r} {words.count(top)} times"))
        own_low = " ".join(" ".join(own).lower().split())
        for m in _NUMBER.finditer(_YEAR.sub(" ", text)):  # years: the unknown-item rule
            if m.group(0) not in own_low:
                out.append(Rejection("unsupported-number", m.group(0)))
                break
        m = CLAIMS.search(text)
        if m and not _has_phrase(own_low, m.group(0).lower()):
            out.append(Rejection("unsupported-claim", m.group(0)))
        # word n-grams looked up in the values: one pass, not a search per value
        said = _phrases(low, self._longest) - _phrases(own_low, self._longest)
        leaked = sorted(v for v in said if v in self._values and user_id not in self._values[v])
        if leaked:
            out.append(Rejection("other-profile", leaked[0]))
        name = _unsupported_name(text, own_low, self._title_words)
        if name:
            out.append(Rejection("unsupported-name", name))
        out += self._unknown_titles(text)
        grounds = list(grounds)
        if grounds and not any(mentions(text, g) for g in grounds):
            out.append(Rejection("ungrounded", "names none of: " + "; ".join(grounds)))
        return out

    def _unknown_titles(self, text: str) -> list[Rejection]:
        """A "(year)" must close a catalogue title of that year; a quoted name must be one."""
        out = []
        low = text.lower()
        for m in _YEAR.finditer(text):
            before = " ".join(low[: m.start()].split())
            forms = self._by_year.get(m.group(1), set())
            if not any(before.endswith(_YEAR.sub("", f).strip()) for f in forms):
                start = max(0, m.start() - 40)
                out.append(Rejection("unknown-item", text[start : m.end()].strip()))
        for m in _QUOTED.finditer(text):
            name = " ".join(m.group(1).lower().split()).strip(" .,!?")
            if name and name not in self._forms:
                out.append(Rejection("unknown-item", m.group(1)))
        return out
