"""The post-ranking stage: trade some accuracy for diversity, calibration or tail exposure.

Each reranker reorders a user's best ``pool`` items (seen items left out) greedily into a list
of ``depth`` and has one strength in [0, 1] (0: the model's own order):
- ``mmr`` (Carbonell & Goldstein 1998): relevance against the most similar item already listed
  (cosine of genre vectors), weight ``strength`` on the similarity.
- ``calibrated`` (Steck, RecSys 2018): relevance against KL(history genres || list genres),
  weight ``strength`` on the KL.
- ``tail``: relevance plus ``strength`` for items in the popularity tail (``fairness.item_groups``).
Relevance is the model's score min-max scaled within the pool, so strengths mean the same for
every model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from llmrec.errors import ConfigError

RERANKERS = ("mmr", "calibrated", "tail")
CALIBRATION_ALPHA = 0.01  # Steck's smoothing of the list distribution toward the history


# the grid ``strength=auto`` searches and ``--tradeoffs`` draws: finer where lists change most
STRENGTHS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7, 0.9)


@dataclass(frozen=True)
class RerankSpec:
    name: str
    strength: float
    auto: bool = False  # ``mmr=auto``: ``llmrec eval`` picks the strength on validation

    @classmethod
    def parse(cls, text: str, allow_auto: bool = False) -> RerankSpec:
        """'mmr=0.3' (or 'mmr:0.3') -> RerankSpec('mmr', 0.3); 'mmr=auto' where allowed."""
        name, _, value = text.replace(":", "=", 1).partition("=")
        name = name.strip()
        if name not in RERANKERS:
            raise ConfigError(f"--rerank {text!r}: use one of {', '.join(RERANKERS)}=STRENGTH")
        if value.strip() == "auto":
            if not allow_auto:
                raise ConfigError(
                    f"--rerank {text!r}: 'auto' is chosen on validation by llmrec eval; "
                    "give the strength it reports"
                )
            return cls(name, 0.0, auto=True)
        try:
            strength = float(value)
        except ValueError:
            raise ConfigError(f"--rerank {text!r}: the strength must be a number") from None
        if not 0.0 <= strength <= 1.0:
            raise ConfigError(f"--rerank {text!r}: the strength must be in [0, 1]")
        return cls(name, strength)

    def __str__(self) -> str:
        return f"{self.name}=auto" if self.auto else f"{self.name}={self.strength:g}"


def item_groups(popularity: np.ndarray) -> np.ndarray:
    """0 head, 1 torso, 2 tail per item: cumulative thirds of training interactions, most
    popular first (items without interactions are tail)."""
    order = np.argsort(-popularity, kind="stable")
    share = np.cumsum(popularity[order]) / max(popularity.sum(), 1)
    before = share - popularity[order] / max(popularity.sum(), 1)  # mass above the item
    group_sorted = np.where(before < 1 / 3, 0, np.where(before < 2 / 3, 1, 2))
    out = np.empty(len(popularity), dtype=np.int64)
    out[order] = group_sorted
    return out


def genre_shares(vectors: np.ndarray) -> np.ndarray:
    """Each item's genres spread evenly (rows sum to 1; 0 for an item without genres)."""
    return vectors / np.maximum(vectors.sum(axis=1, keepdims=True), 1e-12)


def genre_distribution(rows: sp.csr_matrix, vectors: np.ndarray) -> np.ndarray:
    """Per row, the mean over its items of each item's genre shares (Steck's p)."""
    counts = np.asarray(rows.sum(axis=1)).ravel()
    dist = np.asarray(rows @ genre_shares(vectors))
    return dist / np.maximum(counts, 1e-12)[:, None]


def _scaled(rel: np.ndarray) -> np.ndarray:
    lo, hi = rel.min(), rel.max()
    return (rel - lo) / (hi - lo) if hi > lo else np.ones_like(rel)


def mmr(rel: np.ndarray, vectors: np.ndarray, strength: float, depth: int) -> np.ndarray:
    """Pool positions in MMR order (``rel`` scaled, ``vectors`` the pool's item vectors)."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    sim = unit @ unit.T
    chosen: list[int] = []
    most = np.zeros(len(rel))  # each item's highest similarity to the list so far
    free = np.ones(len(rel), dtype=bool)
    for _ in range(min(depth, len(rel))):
        value = (1 - strength) * rel - strength * most
        value[~free] = -np.inf
        j = int(np.argmax(value))
        chosen.append(j)
        free[j] = False
        most = np.maximum(most, sim[j])
    return np.array(chosen, dtype=np.int64)


def calibrated(
    rel: np.ndarray, dist: np.ndarray, target: np.ndarray, strength: float, depth: int
) -> np.ndarray:
    """Pool positions by Steck's greedy calibration: ``dist`` the pool items' genre shares
    (rows sum to 1 where genred), ``target`` the user's history distribution p."""
    chosen: list[int] = []
    total = np.zeros(dist.shape[1])
    gained = 0.0
    free = np.ones(len(rel), dtype=bool)
    for step in range(min(depth, len(rel))):
        q = (total[None, :] + dist) / (step + 1)
        q = (1 - CALIBRATION_ALPHA) * q + CALIBRATION_ALPHA * target[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(target > 0, target * np.log(target / q), 0.0).sum(axis=1)
        value = (1 - strength) * (gained + rel) - strength * kl
        value[~free] = -np.inf
        j = int(np.argmax(value))
        chosen.append(j)
        free[j] = False
        total += dist[j]
        gained += rel[j]
    return np.array(chosen, dtype=np.int64)


def tail_boost(rel: np.ndarray, is_tail: np.ndarray, strength: float, depth: int) -> np.ndarray:
    value = (1 - strength) * rel + strength * is_tail
    return np.argsort(-value, kind="stable")[:depth]


class Reranker:
    """One reranker with its item facts: orders a pool of items (best first by the model's
    score) into a list. The evaluated (``Reranked``) and the served lists both come from
    ``order``, so they agree."""

    def __init__(
        self, spec: RerankSpec, vectors: np.ndarray | None, popularity: np.ndarray, pool: int = 100
    ) -> None:
        if spec.name in ("mmr", "calibrated") and vectors is None:
            raise ConfigError(f"--rerank {spec}: needs item genres, and this catalogue has none")
        self.spec, self.vectors, self.pool = spec, vectors, pool
        self.shares = genre_shares(vectors) if vectors is not None else None
        self.is_tail = (item_groups(popularity) == 2).astype(np.float64)

    def order(
        self, item_idx: np.ndarray, scores: np.ndarray, history: np.ndarray, depth: int
    ) -> np.ndarray:
        """Positions into the pool ``item_idx`` (with ``scores``) in reranked order, at most
        ``depth``; ``history``: the user's item indices (calibration's target)."""
        rel = _scaled(np.asarray(scores, dtype=np.float64))
        s = self.spec.strength
        if self.spec.name == "tail":
            return tail_boost(rel, self.is_tail[item_idx], s, depth)
        assert self.vectors is not None and self.shares is not None  # checked in __init__
        if self.spec.name == "mmr":
            return mmr(rel, self.vectors[item_idx], s, depth)
        shares = self.shares
        target = shares[history].mean(axis=0) if len(history) else np.zeros(shares.shape[1])
        return calibrated(rel, shares[item_idx], target, s, depth)


class Reranked:
    """A fitted model whose scores put a reranked top-``depth`` first: what ``evaluate``
    reads through ``score``. Seen items (the model's ``history_``) never enter the pool, as
    the protocols exclude them."""

    def __init__(
        self,
        model: object,
        spec: RerankSpec,
        vectors: np.ndarray | None,
        popularity: np.ndarray,
        pool: int = 100,
        depth: int = 20,
    ) -> None:
        self.reranker = Reranker(spec, vectors, popularity, pool)
        self.model, self.spec, self.pool, self.depth = model, spec, pool, depth
        self.name = f"{getattr(model, 'name', 'model')}+{spec}"

    def __getattr__(self, name: str) -> object:  # users_, items_, history_ ... of the model
        return getattr(self.model, name)

    def score(self, user_idx: np.ndarray, candidates: np.ndarray | None = None) -> np.ndarray:
        base = np.asarray(self.model.score(user_idx, candidates), dtype=np.float64)  # type: ignore[attr-defined]
        if self.spec.strength == 0:
            return base
        items = np.arange(base.shape[1]) if candidates is None else np.asarray(candidates)
        history: sp.csr_matrix = self.model.history_  # type: ignore[attr-defined]
        rows = history[user_idx].tocsr()
        seen = rows[:, items].toarray() != 0
        out = base.copy()
        for r in range(len(user_idx)):
            s = np.where(seen[r] | ~np.isfinite(base[r]), -np.inf, base[r])
            n = min(self.pool, int(np.isfinite(s).sum()))
            if n == 0:
                continue
            pool = np.argpartition(-s, n - 1)[:n]
            pool = pool[np.argsort(-s[pool], kind="stable")]
            liked = rows.indices[rows.indptr[r] : rows.indptr[r + 1]][
                rows.data[rows.indptr[r] : rows.indptr[r + 1]] > 0
            ]
            order = self.reranker.order(items[pool], s[pool], liked, self.depth)
            top = np.nanmax(np.where(np.isfinite(base[r]), base[r], np.nan)) + 1.0
            out[r, pool[order]] = top + (len(order) - np.arange(len(order)))
        return out
