"""The live model's event log: what it was trained on plus what arrived since, kept so that
reading one user's events and applying new ones cost those events, not a pass over the log.

The training log (``base``) stays a frame sorted by user row, with row offsets; events that
arrive are kept per user row as tuples until ``compact`` folds them into the base (a linear
merge, once per many events: ``compact_at``). Positive events only: dislikes live apart.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd

from llmrec.data import columns as C

LOG_COLUMNS = (C.USER_ID, C.ITEM_ID, C.TIMESTAMP, C.EVENT, C.VALUE, *C.CONTEXT_COLUMNS)
COLUMNS = (*LOG_COLUMNS, "user_idx", "item_idx")
COMPACT_MIN = 50_000  # arrived events kept apart at least up to this many...
COMPACT_SHARE = 4  # ...or a quarter of the base: merging costs the whole log, so rarely


class EventLog:
    """Events with ``user_idx``/``item_idx`` (rows of the live model's users and items)."""

    def __init__(self, base: pd.DataFrame) -> None:
        self._set_base(base.reset_index(drop=True))
        self._arrived: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
        self.n_arrived = 0
        # per user and item row: events held (grown as rows appear); per user: from training
        self.user_counts = np.bincount(self._user).astype(np.int64)
        self.item_counts = np.bincount(base["item_idx"].to_numpy()).astype(np.int64)
        self._trained = self.user_counts.copy()

    def _set_base(self, base: pd.DataFrame) -> None:
        user = base["user_idx"].to_numpy(np.int64)
        if len(user) and (np.diff(user) < 0).any():  # a stable sort: each user's order kept
            base = base.iloc[np.argsort(user, kind="stable")].reset_index(drop=True)
            user = base["user_idx"].to_numpy(np.int64)
        for col in base.columns:  # Arrow columns in one chunk: a take of a few rows from
            # several chunks costs the whole column (concatenated logs have several)
            arrow = getattr(base[col].array, "__arrow_array__", None)
            if arrow is not None and getattr(arrow(), "num_chunks", 1) > 1:
                base[col] = pd.Series(arrow().combine_chunks(), dtype=base[col].dtype)
        self.base, self._user = base, user
        n = int(user.max()) + 1 if len(user) else 0
        self._indptr = np.r_[0, np.cumsum(np.bincount(user, minlength=n))].astype(np.int64)

    def __len__(self) -> int:
        return len(self.base) + self.n_arrived

    @property
    def live(self) -> int:
        """Events that arrived after training (compacted or not)."""
        return len(self) - int(self._trained.sum())

    # --- writes ----------------------------------------------------------------------------
    def append(self, row: tuple[Any, ...]) -> None:
        """One event as a ``COLUMNS`` tuple."""
        u, i = int(row[-2]), int(row[-1])
        self._arrived[u].append(row)
        self.n_arrived += 1
        self.user_counts = _bump(self.user_counts, u)
        self.item_counts = _bump(self.item_counts, i)

    def delete_user(self, row: int) -> None:
        """Every event of user ``row`` gone (a pass over the base: rare)."""
        self.n_arrived -= len(self._arrived.pop(row, []))
        if row < len(self._trained):
            self._trained[row] = 0
        self._set_base(self.base[self._user != row].reset_index(drop=True))
        if row < len(self.user_counts):
            self.item_counts = np.bincount(
                self.frame()["item_idx"].to_numpy(np.int64), minlength=len(self.item_counts)
            )
            self.user_counts[row] = 0

    def compact(self, force: bool = False) -> bool:
        """Fold the arrived events into the base when they are many (or ``force``)."""
        due = self.n_arrived >= max(COMPACT_MIN, len(self.base) // COMPACT_SHARE)
        if not self.n_arrived or not (due or force):
            return False
        self._set_base(self.frame())
        self._arrived.clear()
        self.n_arrived = 0
        return True

    # --- reads -----------------------------------------------------------------------------
    def users(self, rows: np.ndarray) -> pd.DataFrame:
        """The whole logs of user ``rows`` (ascending): per user the base's events, then the
        arrived ones in arrival order (a full frame's order, user by user)."""
        rows = np.asarray(rows, dtype=np.int64)
        inside = rows[rows < len(self._indptr) - 1]
        lo, hi = self._indptr[inside], self._indptr[inside + 1]
        take = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi, strict=True)] or [[]])
        base = self.base.iloc[take.astype(np.int64)]
        arrived = [e for r in rows.tolist() for e in self._arrived.get(r, ())]
        if not arrived:
            return base.reset_index(drop=True)
        return pd.concat([base, _frame(arrived)], ignore_index=True)

    def frame(self) -> pd.DataFrame:
        """Every event: the base, then the arrived ones (a linear pass)."""
        arrived = [e for rows in self._arrived.values() for e in rows]
        if not arrived:
            return self.base
        return pd.concat([self.base, _frame(arrived)], ignore_index=True)


def _frame(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=list(COLUMNS))
    out[C.VALUE] = pd.to_numeric(out[C.VALUE], errors="coerce")
    out[C.TIMESTAMP] = out[C.TIMESTAMP].astype(np.int64)
    return out


def _bump(counts: np.ndarray, at: int) -> np.ndarray:
    if at >= len(counts):  # grown by doubling: appending rows one by one stays linear
        counts = np.r_[counts, np.zeros(max(at + 1 - len(counts), len(counts)), np.int64)]
    counts[at] += 1
    return counts
