"""Score a protocol stage with a fitted model and compute every metric the same way for all."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmrec.data.matrix import TrainData
from llmrec.data.splits import Stage
from llmrec.eval import metrics
from llmrec.models.base import Recommender, score_rows
from llmrec.progress import steps

KS = (5, 10, 20)


@dataclass(frozen=True)
class StageResult:
    metrics: dict[str, float]
    user_idx: np.ndarray
    ranks: np.ndarray  # best target rank per user (1-based); 0 when a user has no target
    per_user: dict[str, np.ndarray]  # per-user accuracy metrics, for paired tests
    topk: np.ndarray | None = None  # (n_users, max k) item positions, -1 padded


def rank_stage(model: Recommender, stage: Stage, kmax: int) -> metrics.Ranking:
    """Score and rank ``stage`` block by block of users: only the top ``kmax`` and the targets'
    ranks are kept, so memory is a block x items, never users x items."""
    n_items = len(model.items_) if stage.candidates is None else len(stage.candidates)
    rows = score_rows(n_items)
    parts = []
    n = len(stage.user_idx)
    with steps(f"scoring {n:,} users", -(-n // rows), 10) as advance:
        for lo in range(0, n, rows):
            sub = stage.subset(np.arange(lo, min(lo + rows, n)))
            s = model.score(sub.user_idx, stage.candidates)
            parts.append(metrics.rank(s, sub.targets, sub.exclude, kmax, stage.tie_order))
            advance(1)
    if not parts:
        return metrics.rank(np.zeros((0, n_items)), stage.targets, stage.exclude, kmax)
    return metrics.Ranking(
        np.concatenate([p.topk for p in parts]),
        np.concatenate([p.target_ranks for p in parts]),
        np.concatenate([p.n_targets for p in parts]),
    )


def evaluate(
    model: Recommender,
    stage: Stage,
    train: TrainData,
    ks: tuple[int, ...] = KS,
    item_vectors: np.ndarray | None = None,
    catalogue_metrics: bool = True,
) -> StageResult:
    """Every metric of docs/design.md for ``stage``; ``train`` gives popularity for novelty/ARP."""
    ranking = rank_stage(model, stage, max(ks))
    return evaluate_ranking(ranking, stage, train, ks, item_vectors, catalogue_metrics)


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
    return evaluate_ranking(ranking, stage, train, ks, item_vectors, catalogue_metrics)


def evaluate_ranking(
    ranking: metrics.Ranking,
    stage: Stage,
    train: TrainData,
    ks: tuple[int, ...] = KS,
    item_vectors: np.ndarray | None = None,
    catalogue_metrics: bool = True,
) -> StageResult:
    """The metrics of a ``ranking`` of ``stage`` (see ``evaluate``)."""
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
