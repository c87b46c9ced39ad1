"""The bundled LLM as an optional reader of a request that names no genre ("something to
make me laugh"): which of the catalogue's genres does it ask for? Off by default
(``llmrec serve --ask-llm``): measured (BENCHMARKS.md "Requests in words: the LLM as a genre
reader"), it labels few requests (3 of 36 test phrases, all right) and those lists gain
(personal + request NDCG@10 +4% on ml-100k, +5% on ml-1m, paired p < 0.01), but each request
it reads costs ~0.8 s on the CPU.

Its output is checked like every LLM output: it can only name a genre the catalogue has (the
genres are scored as continuations, nothing is generated), it must beat the runner-up by
``margin`` in pointwise mutual information with the request (its log-probability given the
request minus given a neutral one, so a genre the model always likes does not win), a genre
the user excluded is never added, and a genre that would leave no item is dropped. The
request is data in a tagged field (``llm.prompts``), never an instruction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from llmrec.llm.prompts import DATA_RULE, field
from llmrec.llm.runtime import LanguageModel, chat_prompt
from llmrec.query.parse import ParsedQuery

MARGIN = 0.75  # chosen on the validation phrases of bench_ask_llm.py
NEUTRAL = "something"


class GenreReader:
    """One genre for a request's leftover words, or None (see the module doc)."""

    def __init__(
        self, llm: LanguageModel, genres: Sequence[str], noun: str = "item", margin: float = MARGIN
    ) -> None:
        self.llm, self.genres, self.noun, self.margin = llm, sorted(genres), noun, margin
        self._neutral: np.ndarray | None = None
        self._read: dict[str, tuple[str, float]] = {}  # words -> (best genre, its margin)

    def prompt(self, words: str) -> str:
        return chat_prompt(
            f"You sort requests for {self.noun}s into genres. {DATA_RULE}",
            f"{field('request', words, 200)}\nWhich genre is asked for? One of: "
            f"{', '.join(self.genres)}.",
            "Genre:",
        )

    def best(self, words: str) -> tuple[str, float]:
        """The genre of most mutual information with ``words`` and its lead over the next."""
        if words not in self._read:
            with self.llm.lock:
                if self._neutral is None:
                    self._neutral = self.llm.score_candidates(self.prompt(NEUTRAL), self.genres)
                given = self.llm.score_candidates(self.prompt(words), self.genres)
            pmi = given - self._neutral
            order = np.argsort(-pmi)
            lead = float(pmi[order[0]] - pmi[order[1]]) if len(order) > 1 else float("inf")
            self._read[words] = (self.genres[int(order[0])], lead)
            while len(self._read) > 1024:
                self._read.pop(next(iter(self._read)))
        return self._read[words]

    def read(self, q: ParsedQuery, allowed_count: Callable[[ParsedQuery], int]) -> ParsedQuery:
        """``q`` with the reader's genre added, when the parser found none, words are left,
        and every check passes; else ``q`` unchanged."""
        c = q.constraints
        if not q.intent or c.genres or not self.genres:
            return q
        genre, lead = self.best(q.text)  # the whole request: the words left lack context
        if lead < self.margin or genre in c.not_genres:  # a catalogue genre by construction
            return q
        out = replace(q, constraints=replace(c, genres=(genre,)))
        return out if allowed_count(out) > 0 else q
