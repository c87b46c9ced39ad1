"""Typos in a request: words one or two edits away from a genre or an attribute value of the
catalogue ("comdies", "thriler", "stephen kng") read as that genre or value.

Conservative on purpose, because a wrong constraint removes items the user wanted: a word of
5 to 7 letters may be 1 edit (optimal string alignment: a swap of two neighbours is one) from
the value, a longer one 2, a shorter one none; the first letter must match (typos rarely hit
it, and "prime" must not become "crime"); and a word that is itself a word of the catalogue's
titles is left alone (it means what it says). The chip shows what was understood, and the user
can remove it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rapidfuzz import process
from rapidfuzz.distance import OSA


def allowed_edits(letters: int) -> int:
    return 0 if letters < 5 else 1 if letters < 8 else 2


class FuzzyTable:
    """Keys (token tuples) found by a span of the same number of words, within the edits."""

    def __init__(self, keys: Iterable[tuple[str, ...]]) -> None:
        self._by: dict[tuple[int, str], tuple[list[str], list[tuple[str, ...]]]] = {}
        for key in dict.fromkeys(keys):
            joined = " ".join(key)
            if not joined:
                continue
            texts, found = self._by.setdefault((len(key), joined[0]), ([], []))
            texts.append(joined)
            found.append(key)

    def find(self, words: Sequence[str]) -> tuple[str, ...] | None:
        """The closest key to ``words`` within the allowed edits (ties: the first)."""
        joined = " ".join(words)
        edits = allowed_edits(len(joined.replace(" ", "")))
        bucket = self._by.get((len(words), joined[:1]))
        if not edits or bucket is None:
            return None
        best = process.extractOne(joined, bucket[0], scorer=OSA.distance, score_cutoff=edits)
        return None if best is None else bucket[1][best[2]]
