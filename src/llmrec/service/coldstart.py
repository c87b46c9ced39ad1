"""The live model's answer for a user without history: recent popularity, per request
context, with items that have no events yet borrowing their text neighbours' popularity. A
mixin of ``LiveModel`` (its state, refreshed with the model)."""

from __future__ import annotations

import numpy as np

from llmrec.data import columns as C
from llmrec.data.matrix import TrainData
from llmrec.models.base import Recommender

RECENT_DAYS = 30
DAY = 86_400


class ColdStart:
    model: Recommender
    _pop: np.ndarray
    _borrowed: np.ndarray
    _pop_ctx: dict[str, tuple[dict[str, int], np.ndarray]]

    def _vectors(self) -> np.ndarray | None:
        raise NotImplementedError

    def _popularity(self, data: TrainData) -> None:
        """Cold-start scores: events in the last ``RECENT_DAYS`` (all time when none), and
        per context value the smoothed share of each item's events in it."""
        log = data.log
        ts = log[C.TIMESTAMP].to_numpy()
        n = data.n_items
        recent = ts >= (ts.max() - RECENT_DAYS * DAY) if len(ts) else np.zeros(0, bool)
        if recent.sum() < 100:
            recent = np.ones(len(ts), bool)
        items = log["item_idx"].to_numpy()
        self._pop = np.bincount(items[recent], minlength=n).astype(float)
        self._pop_ctx: dict[str, tuple[dict[str, int], np.ndarray]] = {}
        for col in C.CONTEXT_COLUMNS:
            if col not in log or not log[col].notna().any():
                continue
            vals = log.loc[recent, col].astype("string").fillna("").to_numpy()
            index, codes = np.unique(vals, return_inverse=True)
            counts = np.zeros((n, len(index)))
            np.add.at(counts, (items[recent], codes), 1.0)
            self._pop_ctx[col] = ({str(v): j for j, v in enumerate(index)}, counts)
        # items with no events yet borrow the popularity of their 10 nearest items by text
        vecs = self._vectors()
        fresh = np.flatnonzero(np.bincount(items, minlength=n) == 0)
        self._borrowed = np.zeros(n)
        if vecs is not None and len(fresh) and len(fresh) < n:
            sims = vecs[fresh] @ vecs.T
            sims[:, fresh] = -np.inf
            near = np.argsort(-sims, axis=1)[:, :10]
            w = np.maximum(np.take_along_axis(sims, near, axis=1), 0)
            self._borrowed[fresh] = (
                0.5 * (w * self._pop[near]).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-12)
            )

    def _cold(
        self, k: int, context: dict[str, str], blocked: set[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """A user with no history: popularity in the request's context, new items by text."""
        score = self._pop + self._borrowed
        for col, value in context.items():
            if col in self._pop_ctx:
                index, counts = self._pop_ctx[col]
                j = index.get(str(value))
                hits = counts[:, j] if j is not None else np.zeros(len(score))
                score = score * (hits + 1.0) / (counts.sum(axis=1) + len(index))
        if blocked:
            score = score.copy()
            score[self.model.items_.index(list(blocked))] = -np.inf
        top = np.argsort(-score, kind="stable")[:k]
        return top, score[top]
