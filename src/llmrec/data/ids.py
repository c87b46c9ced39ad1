"""String ids at the edges, dense ints inside; the item order is also the protocol's tie order."""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

_INT = re.compile(r"-?\d+")


def sorted_ids(ids: Iterable[str]) -> np.ndarray:
    """Unique ids sorted as integers when every id is an integer, else as strings.

    This is docs/design.md's ordering rule: it orders interactions sharing a timestamp and breaks
    score ties (the lower id wins), so dense index order == protocol order.
    """
    unique = pd.Series(_as_strings(ids).unique(), dtype=object)
    if len(unique) and unique.str.fullmatch(_INT.pattern).all():
        lengths = unique.str.len()
        if lengths.max() <= 18:  # fits int64: sort vectorised
            order = np.argsort(unique.to_numpy().astype(np.int64), kind="stable")
        else:
            order = np.argsort(np.array([int(u) for u in unique], dtype=object), kind="stable")
        return np.asarray(unique.to_numpy()[order], dtype=str)
    return np.sort(np.asarray(unique.to_numpy(), dtype=str))


def _as_strings(ids: Iterable[str]) -> pd.Series:
    """``ids`` as a string Series, without a Python loop over array-likes (millions of ids)."""
    if isinstance(ids, np.ndarray):
        ids = ids.astype(object)
    if isinstance(ids, pd.Series | pd.Index | np.ndarray | pd.api.extensions.ExtensionArray):
        return pd.Series(ids, copy=False).astype(str)
    return pd.Series(list(ids), dtype=object).astype(str)


class IdMap:
    """A fixed bijection between string ids and 0..n-1."""

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = np.asarray(ids, dtype=str)
        self._index = pd.Index(self.ids)
        if not self._index.is_unique:
            raise ValueError("IdMap ids must be unique")

    @classmethod
    def from_values(cls, values: Iterable[str]) -> IdMap:
        return cls(sorted_ids(values))

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, ids: Iterable[str]) -> np.ndarray:
        """Dense indices of ``ids``; -1 for ids not in the map."""
        # hash each distinct id once: an event log repeats its ids many times over
        codes, uniques = pd.factorize(_as_strings(ids), use_na_sentinel=False)
        return self._index.get_indexer(pd.Index(uniques))[codes]

    def position(self, item_id: str) -> int:
        """Dense index of one id, -1 when absent (a hash lookup: no array is built)."""
        try:
            return int(self._index.get_loc(item_id))
        except KeyError:
            return -1

    def __contains__(self, item_id: object) -> bool:
        return str(item_id) in self._index
