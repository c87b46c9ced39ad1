"""Logged bandit feedback of the Open Bandit Dataset, a click model on it, and our policies.

One ``BanditLog`` per (logging policy, campaign): the impressions as ``LoggedFeedback`` plus
their context (four categorical user features and the dataset's user-item affinities). The
click model (logistic regression on user features, item, position and affinity) gives the
q̂ of doubly robust estimation, cross-fitted, and the scores our policies rank items by.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse as sp
from sklearn.linear_model import LogisticRegression

from llmrec.data.dataset import Dataset
from llmrec.errors import DataError
from llmrec.eval.ope import LoggedFeedback
from llmrec.online.policies import EpsilonGreedySlate, bernoulli_ts_distribution

USER_FEATURES = tuple(f"user_feature_{i}" for i in range(4))
POLICIES = ("random", "bts")
CAMPAIGNS = ("all", "men", "women")
SLOTS = 3


@dataclass(frozen=True)
class BanditLog:
    policy: str
    campaign: str
    feedback: LoggedFeedback
    users: np.ndarray  # (n, 4) categorical user features
    affinity: np.ndarray  # (n, n_actions)
    timestamp: np.ndarray
    n_actions: int

    def __len__(self) -> int:
        return len(self.feedback)

    def subset(self, rows: np.ndarray) -> BanditLog:
        return BanditLog(
            self.policy,
            self.campaign,
            self.feedback.subset(rows),
            self.users[rows],
            self.affinity[rows],
            self.timestamp[rows],
            self.n_actions,
        )

    def split_by_time(self, fraction: float) -> tuple[BanditLog, BanditLog]:
        """The earliest ``fraction`` of impressions and the rest."""
        order = np.argsort(self.timestamp, kind="stable")
        cut = int(round(fraction * len(order)))
        return self.subset(np.sort(order[:cut])), self.subset(np.sort(order[cut:]))


def obd_logs(ds: Dataset) -> dict[tuple[str, str], BanditLog]:
    if "bandit_log" not in ds.extra:
        raise DataError(f"dataset {ds.name!r} has no bandit_log: use `llmrec data fetch obd`")
    log = ds.extra["bandit_log"]
    # the catalogue, not the log, says how many items there are: a policy may never show some
    catalogue = ds.items.groupby(["policy", "campaign"]).size() if ds.items is not None else None
    out = {}
    for (policy, campaign), g in log.groupby(["policy", "campaign"], sort=False):
        n_actions = int(g["item_id"].max()) + 1
        if catalogue is not None and (policy, campaign) in catalogue.index:
            n_actions = max(n_actions, int(catalogue[(policy, campaign)]))
        affinity = g[[f"user-item_affinity_{a}" for a in range(n_actions)]].to_numpy(float)
        feedback = LoggedFeedback(
            g["item_id"].to_numpy(np.int64),
            g["position"].to_numpy(np.int64) - 1,  # OBD positions are 1-based
            g["click"].to_numpy(float),
            g["propensity_score"].to_numpy(float),
        )
        users = g[list(USER_FEATURES)].astype(str).to_numpy()
        out[(str(policy), str(campaign))] = BanditLog(
            str(policy),
            str(campaign),
            feedback,
            users,
            affinity,
            g["timestamp"].to_numpy(),
            n_actions,
        )
    return out


def bts_distribution(ds: Dataset, campaign: str, n_sim: int = 100_000, seed: int = 0) -> np.ndarray:
    """(actions x slots) of the logged Bernoulli TS policy, from its shipped prior."""
    if "bts_prior" not in ds.extra:
        raise DataError(
            "the obd dataset predates the BTS prior: run `llmrec data fetch obd --force`"
        )
    prior = ds.extra["bts_prior"]
    p = prior[prior["campaign"] == campaign].sort_values("item_id")
    return bernoulli_ts_distribution(
        p["alpha"].to_numpy(), p["beta"].to_numpy(), SLOTS, n_sim, seed
    )


class ClickModel:
    """P(click | user features, item, position, affinity): L2 logistic regression."""

    def __init__(self, n_actions: int, c: float = 1.0) -> None:
        self.n_actions = n_actions
        self.c = c
        self.vocab: list[dict[str, int]] = []

    def fit(self, log: BanditLog) -> ClickModel:
        self.vocab = [
            {v: i for i, v in enumerate(sorted(set(log.users[:, j])))}
            for j in range(log.users.shape[1])
        ]
        fb = log.feedback
        x = self._features(
            log.users, fb.action, fb.position, log.affinity[np.arange(len(log)), fb.action]
        )
        if len(np.unique(fb.reward)) < 2:
            raise DataError(f"{log.policy}/{log.campaign}: no clicks (or only clicks) to learn")
        self.model = LogisticRegression(C=self.c, max_iter=1000).fit(x, fb.reward)
        return self

    def predict_all(self, log: BanditLog) -> np.ndarray:
        """(n, actions, slots) click probabilities for every item at every slot."""
        n, a = len(log), self.n_actions
        users = np.repeat(log.users, a, axis=0)
        actions = np.tile(np.arange(a), n)
        # every block but the slot's is the same for all slots: built once
        before, after = self._blocks(users, actions, log.affinity.ravel())
        out = np.empty((n, a, SLOTS))
        for pos in range(SLOTS):
            slot = _one_hot(np.full(n * a, pos), SLOTS)
            x = sp.hstack([before, slot, after]).tocsr()
            out[:, :, pos] = self.model.predict_proba(x)[:, 1].reshape(n, a)
        return out

    def _features(
        self, users: np.ndarray, action: np.ndarray, position: np.ndarray, affinity: np.ndarray
    ) -> sp.csr_matrix:
        before, after = self._blocks(users, action, affinity)
        return sp.hstack([before, _one_hot(position, SLOTS), after]).tocsr()

    def _blocks(
        self, users: np.ndarray, action: np.ndarray, affinity: np.ndarray
    ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """The feature columns before the slot's one-hot (user features, item) and after it
        (affinity)."""
        n = len(action)
        blocks = []
        for j, vocab in enumerate(self.vocab):
            col = pd.Series(users[:, j]).map(vocab).fillna(-1).to_numpy(int)
            known = col >= 0
            blocks.append(
                sp.csr_matrix(
                    (np.ones(known.sum()), (np.flatnonzero(known), col[known])),
                    shape=(n, len(vocab)),
                )
            )
        blocks.append(_one_hot(action, self.n_actions))
        return sp.hstack(blocks).tocsr(), sp.csr_matrix(affinity.reshape(-1, 1))


def _one_hot(values: np.ndarray, width: int) -> sp.csr_matrix:
    n = len(values)
    return sp.csr_matrix((np.ones(n), (np.arange(n), values)), shape=(n, width))


def cross_fitted_rewards(log: BanditLog, folds: int = 3, seed: int = 0) -> np.ndarray:
    """q̂ for every impression from a click model fitted on the other folds (for DR)."""
    rng = np.random.default_rng(seed)
    fold = rng.integers(0, folds, len(log))
    out = np.empty((len(log), log.n_actions, SLOTS))
    for f in range(folds):
        model = ClickModel(log.n_actions).fit(log.subset(fold != f))
        out[fold == f] = model.predict_all(log.subset(fold == f))
    return out


def greedy_distribution(scores: np.ndarray, policy: EpsilonGreedySlate) -> np.ndarray:
    """(n, actions, slots) of ``policy`` over actions ranked by ``scores`` (n, actions)."""
    n, a = scores.shape
    order = np.argsort(-scores, axis=1, kind="stable")
    per_rank = policy.distribution(np.arange(a), SLOTS)  # (slots, ranks)
    out = np.empty((n, a, SLOTS))
    out[np.arange(n)[:, None], order] = per_rank.T[None, :, :]
    return out


def uniform_distribution(n: int, n_actions: int) -> np.ndarray:
    """The logged random policy: every item equally likely at every slot."""
    return np.full((n, n_actions, SLOTS), 1.0 / n_actions)
