"""Grounded explanations and pitches: the evidence first, then the LLM's wording of it, checked.

The evidence for recommending item *i* to user *u* is the history item of *u* most similar to
*i* (by text vector), how *u* rated it, and the genres they share. The template states exactly
that. The LLM may word it better; its text is used only when it passes every check in
``safety`` (naming the evidence included), else the template is.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal

from llmrec.llm.prompts import clean, wording_prompt
from llmrec.llm.runtime import LanguageModel
from llmrec.llm.safety import OutputChecker, Rejection, shown

log = logging.getLogger(__name__)

Kind = Literal["explanation", "pitch"]
LIKED = 4.0  # a rating at or above this (on a 5-point scale) reads as "enjoyed"


@dataclass(frozen=True)
class Evidence:
    item_id: str
    title: str
    genres: tuple[str, ...] = ()
    because_title: str | None = None  # the closest item of the user's history
    because_rating: float | None = None
    because_liked: bool = False  # a like event, or a rating at or above LIKED
    shared: tuple[str, ...] = ()  # genres of the item that the history item has too
    profile: str = ""  # the user's own profile text (may be repeated in the output)
    noun: str = "item"  # what the items are: picks the verb ("you read" for books)
    about: str = ""  # the item's own description, where the catalogue has one

    @property
    def grounds(self) -> list[str]:
        """What an explanation must name at least one of."""
        return [t for t in (self.because_title, *self.shared) if t]

    def facts(self) -> list[tuple[str, str]]:
        genres = f" Genres: {', '.join(self.genres)}." if self.genres else ""
        out = [("recommended", f"{self.title}.{genres}")]
        if self.because_title:
            rated = f", rated {self.because_rating:g}/5" if self.because_rating else ""
            out.append(("history_item", f"The user {self._verb()} {self.because_title}{rated}."))
        if self.shared:
            out.append(("shared_genres", ", ".join(self.shared)))
        if self.about:
            out.append(("about", self.about))
        return out

    def _verb(self) -> str:
        return "enjoyed" if self.because_liked else consumed(self.noun)


# how a user "had" an item, by the item noun (``--item-noun``); others read "chose"
VERBS = {
    "movie": "watched",
    "film": "watched",
    "show": "watched",
    "video": "watched",
    "book": "read",
    "article": "read",
    "story": "read",
    "post": "read",
    "song": "listened to",
    "track": "listened to",
    "album": "listened to",
    "podcast": "listened to",
    "product": "bought",
    "game": "played",
}


def consumed(noun: str) -> str:
    return VERBS.get(noun.strip().lower().removesuffix("s"), "chose")


@dataclass(frozen=True)
class Explanation:
    text: str
    source: Literal["llm", "template"]
    problems: tuple[str, ...] = field(default=())  # why the LLM text was not used


def template(e: Evidence, kind: Kind = "explanation") -> str:
    """The evidence stated plainly. Titles and genres come from the catalogue, which anyone
    with a write key can fill: they are quoted through ``safety.shown`` (no URLs, contacts,
    chat tokens or control characters), so a template passes the checks an LLM text must."""
    shared = _join(tuple(g for g in map(shown, e.shared) if g))
    because = shown(e.because_title) if e.because_title else ""
    if kind == "pitch":
        what = f"{_a(shared)} {shared.lower()} pick" if shared else "a pick"
        fans = f" for fans of {because}" if because else " many users enjoy"
        return f"{shown(e.title) or 'This one'}: {what}{fans}."
    if not because:
        return "Popular with other users right now."
    if shared:
        return f"Because you {e._verb()} {because}: both are {shared.lower()}."
    return f"Because you {e._verb()} {because}."


def _a(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _join(words: tuple[str, ...]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


class Explainer:
    """LLM wording with checks and a template fallback; results cached by (kind, evidence)."""

    def __init__(
        self,
        llm: LanguageModel | None,
        checker: OutputChecker,
        noun: str = "item",
        max_tokens: int = 48,
        cache_size: int = 20_000,
    ) -> None:
        self.llm, self.checker, self.noun, self.max_tokens = llm, checker, noun, max_tokens
        self._cache: OrderedDict[tuple[str, Evidence], Explanation] = OrderedDict()
        self._cache_size = cache_size

    def cached(self, e: Evidence, kind: Kind = "explanation") -> Explanation | None:
        return self._cache.get((kind, e))

    def clear(self) -> None:
        self._cache.clear()

    def explain(self, user_id: str | None, e: Evidence, kind: Kind = "explanation") -> Explanation:
        hit = self._cache.get((kind, e))
        if hit is not None:
            return hit
        out = self._make(user_id, e, kind)
        self._cache[(kind, e)] = out
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return out

    def uses_llm(self, e: Evidence) -> bool:
        """Whether ``explain`` would ask the LLM (else it answers at once with the template:
        no model, or nothing personal to word)."""
        return self.llm is not None and e.because_title is not None

    def _make(self, user_id: str | None, e: Evidence, kind: Kind) -> Explanation:
        fallback = template(e, kind)
        if not self.uses_llm(e):
            return Explanation(fallback, "template")
        assert self.llm is not None and e.because_title is not None
        title, because = clean(e.title, 120), clean(e.because_title, 120)
        if kind == "explanation":  # the evidence is named by construction; the model says why
            start = f"You may like {title} because you {e._verb()} {because}"
        else:
            start = f"If you {e._verb()} {because}, {title}"
        prompt = wording_prompt(kind, e.facts(), self.noun, start, anchor=because)
        try:
            with self.llm.lock:
                text = _join_answer(start, self.llm.generate(prompt, self.max_tokens))
        except Exception as err:  # a runtime failure must not take the answer down
            log.warning("LLM generation failed, template used: %s", type(err).__name__)
            return Explanation(fallback, "template", (f"error: {err}",))
        text = _tidy(text, start)
        # the prompt's own noun is no invented name ("Movies like these...")
        own = [e.profile, self.noun, f"{self.noun}s", *(v for _, v in e.facts())]
        problems: list[Rejection] = self.checker.problems(text, user_id, e.grounds, own)
        if text and text[-1] not in ".!?":
            problems.append(Rejection("unfinished", text[-40:]))
        if problems:
            return Explanation(fallback, "template", tuple(map(str, problems)))
        return Explanation(text, "llm")


def _join_answer(start: str, rest: str) -> str:
    rest = rest.strip()
    glued = rest[:1] in ",.;:!?" or rest[:2] == "'s"  # "Kolya 's" -> "Kolya's"
    return start + ("" if glued else " ") + rest


_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def _tidy(text: str, start: str) -> str:
    """Whitespace collapsed; the first sentence after the given ``start`` only (a second one
    is where small models drift; titles in the start may hold full stops: "L.A. Confidential")."""
    text = " ".join(text.split())
    m = _SENTENCE_END.search(text, len(" ".join(start.split())))
    return text[: m.end()] if m else text
