"""Score a protocol stage with a fitted model and compute every metric the same way for all."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from llmrec.data import columns as C
from llmrec.data.matrix import TrainData
from llmrec.eval import metrics
from llmrec.eval.protocols import Stage
from llmrec.models.base import Recommender

KS = (5, 10, 20)
_SCORE_CHUNK = 2048


@dataclass(frozen=True)
class StageResult:
    metrics: dict[str, float]
    user_idx: np.ndarray
    ranks: np.ndarray  # best target rank per user (1-based); 0 when a user has no target
    per_user: dict[str, np.ndarray]  # per-user accuracy metrics, for paired tests
    topk: np.ndarray | None = None  # (n_users, max k) item positions, -1 padded


def scores(model: Recommender, stage: Stage) -> np.ndarray:
    parts = [
        model.score(stage.user_idx[lo : lo + _SCORE_CHUNK], stage.candidates)
        for lo in range(0, len(stage.user_idx), _SCORE_CHUNK)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def genre_vectors(item_table: pd.DataFrame | None) -> np.ndarray | None:
    """Multi-hot genre vectors (items x genres) for intra-list diversity, if genres exist."""
    if item_table is None or C.GENRES not in item_table:
        return None
    lists = [g if isinstance(g, list | np.ndarray) else [] for g in item_table[C.GENRES]]
    vocab = sorted({str(x) for g in lists for x in g})
    if not vocab:
        return None
    col = {g: j for j, g in enumerate(vocab)}
    out = np.zeros((len(lists), len(vocab)), dtype=np.float32)
    for i, g in enumerate(lists):
        out[i, [col[str(x)] for x in g]] = 1.0
    return out


def evaluate(
    model: Recommender,
    stage: Stage,
    train: TrainData,
    ks: tuple[int, ...] = KS,
    item_vectors: np.ndarray | None = None,
    catalogue_metrics: bool = True,
) -> StageResult:
    """Every metric of docs/design.md for ``stage``; ``train`` gives popularity for novelty/ARP."""
    return evaluate_scores(scores(model, stage), stage, train, ks, item_vectors, catalogue_metrics)


def evaluate_scores(
    s: np.ndarray,
    stage: Stage,
    train: TrainData,
    ks: tuple[int, ...] = KS,
    item_vectors: np.ndarray | None = None,
    catalogue_metrics: bool = True,
) -> StageResult:
    """``evaluate`` for a score matrix already computed (users of ``stage`` x its candidates)."""
    ranking = metrics.rank(s, stage.targets, stage.exclude, max(ks), stage.tie_order)
    per_user: dict[str, np.ndarray] = {}
    out: dict[str, float] = {}
    for k in ks:
        for name, vals in metrics.accuracy(ranking, k).items():
            per_user[name] = vals
            out[name] = float(vals.mean()) if len(vals) else 0.0
    if catalogue_metrics:
        pop = np.asarray(train.matrix.sum(axis=0)).ravel()
        n_train_users = int((train.matrix.getnnz(axis=1) > 0).sum())
        vecs = item_vectors
        if stage.candidates is not None:
            pop = pop[stage.candidates]
            vecs = None if vecs is None else vecs[stage.candidates]
        for k in ks:
            out.update(metrics.catalogue(ranking.topk, k, pop, n_train_users, vecs))
    ranks = np.where(ranking.target_ranks > 0, ranking.target_ranks, np.iinfo(np.int64).max)
    best = ranks.min(axis=1) if ranks.size else np.zeros(0, np.int64)
    best = np.where(best == np.iinfo(np.int64).max, 0, best)
    return StageResult(out, stage.user_idx, best, per_user, ranking.topk)
