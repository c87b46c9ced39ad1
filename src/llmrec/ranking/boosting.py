"""The ranker's learned part: a listwise linear model with LightGBM lambdarank trees boosted
from its scores, their L2 and rounds chosen by cross-validation over the validation users."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from llmrec.config import get_settings
from llmrec.eval import metrics
from llmrec.ranking.listwise import Listwise, fit_listwise, group_sizes, queries_with_positive

if TYPE_CHECKING:
    import lightgbm

    from llmrec.ranking.ranker import RankerConfig

# compared by cross-validation over users: 0 rounds = the listwise linear model alone
ROUNDS = (0, 25, 50, 100, 200, 300)
L2 = (0.01, 0.1, 1.0)


def booster_params(c: RankerConfig) -> dict[str, Any]:
    return {
        "objective": "lambdarank",
        "lambdarank_truncation_level": 20,
        "num_leaves": c.num_leaves,
        "learning_rate": c.learning_rate,
        "min_data_in_leaf": c.min_data_in_leaf,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "num_threads": get_settings().threads,
        "seed": c.seed,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    }


def train_booster(
    c: RankerConfig, x: np.ndarray, qid: np.ndarray, label: np.ndarray, rounds: int, base: Listwise
) -> lightgbm.Booster | None:
    """Trees boosted from the listwise model's scores (its corrections only)."""
    import lightgbm as lgb

    if rounds == 0:
        return None
    keep = queries_with_positive(qid, label)
    data = lgb.Dataset(
        x[keep], label[keep], group=group_sizes(qid[keep]), init_score=base.predict(x[keep])
    )
    return lgb.train(booster_params(c), data, num_boost_round=rounds)


def choose(
    c: RankerConfig, x: np.ndarray, qid: np.ndarray, label: np.ndarray, cand: np.ndarray
) -> tuple[float, int, float]:
    """(l2, rounds, out-of-fold NDCG@10) chosen by cross-validation over the validation
    users: first the listwise model's L2, then the trees on top of it."""
    fold_of = np.random.default_rng(c.seed).permutation(len(cand)) % c.folds
    folds = [fold_of[qid] == f for f in range(c.folds)]
    l2s = [c.l2] if c.l2 else list(L2)
    # per L2: the fold models and their out-of-fold scores
    linear = {
        l2: [fit_listwise(x[~held], qid[~held], label[~held], l2) for held in folds] for l2 in l2s
    }
    oof_lin = {l2: np.zeros(len(label)) for l2 in l2s}
    for l2, models in linear.items():
        for held, m in zip(folds, models, strict=True):
            oof_lin[l2][held] = m.predict(x[held])
    lin = {l2: metrics.candidate_ndcg10(oof_lin[l2], cand, label) for l2 in l2s}
    l2 = max(l2s, key=lambda v: (lin[v], v))
    rounds = [c.rounds] if c.rounds is not None else list(ROUNDS)
    oof = {r: oof_lin[l2].copy() for r in rounds}
    if max(rounds) > 0:
        for held, base in zip(folds, linear[l2], strict=True):
            booster = train_booster(c, x[~held], qid[~held], label[~held], max(rounds), base)
            for r in rounds:
                if booster is not None and r > 0:
                    oof[r][held] += booster.predict(x[held], num_iteration=r)
    ndcg = {r: metrics.candidate_ndcg10(oof[r], cand, label) for r in rounds}
    best = max(rounds, key=lambda r: (ndcg[r], -r))
    return l2, best, ndcg[best]
