"""Slate policies that explore, and the exact probabilities with which they show each item.

``EpsilonGreedySlate`` explores per slot: each of the k slots independently shows, with
probability ``share``, an item drawn from the exploration pool (the ``pool`` candidates ranked
just below the top k) instead of the ranker's item for that slot; explored slots get distinct
pool items (uniform, without replacement). By symmetry the item at slot j is then
- the ranker's j-th item with probability 1 − share,
- each pool item with probability share / |pool|,
so at every slot the probabilities over the candidates sum to 1; that marginal probability is
the propensity logged with each shown item (Open Bandit Dataset's convention: P(item at slot)).
With share 0 the slate is exactly the ranker's top k, every propensity 1. When fewer than k
candidates lie below the top k the request is not explored (propensities 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Slate:
    items: np.ndarray  # candidate ids (whatever ``ranked`` holds), one per slot
    propensities: np.ndarray  # P(this item at this slot) under the policy
    explored: np.ndarray  # bool: the slot showed a pool item
    pool: int  # how many candidates could be explored (0: none, the request was not explored)


@dataclass(frozen=True)
class EpsilonGreedySlate:
    share: float = 0.1  # probability that a slot explores
    pool: int = 50  # how many candidates below the top k can be explored

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"exploration share must be in [0, 1], got {self.share}")
        if self.pool < 1:
            raise ValueError(f"exploration pool must be at least 1, got {self.pool}")

    def pool_of(self, ranked: np.ndarray, k: int) -> np.ndarray:
        pool = ranked[k : k + self.pool]
        return pool if len(pool) >= k and self.share > 0 else pool[:0]

    def choose(self, ranked: np.ndarray, k: int, rng: np.random.Generator) -> Slate:
        """A slate of ``min(k, len(ranked))`` from candidates ``ranked`` best first."""
        k = min(k, len(ranked))
        items = np.array(ranked[:k])
        pool = self.pool_of(ranked, k)
        if not len(pool):
            return Slate(items, np.ones(k), np.zeros(k, bool), 0)
        explored = rng.random(k) < self.share
        items[explored] = rng.choice(pool, size=int(explored.sum()), replace=False)
        p = np.where(explored, self.share / len(pool), 1.0 - self.share)
        return Slate(items, p, explored, len(pool))

    def propensity(self, explored: np.ndarray, pool: np.ndarray) -> np.ndarray:
        """This policy's probability of shown items, from whether each was a pool item and
        how large the pool of its request was (what the service logs)."""
        p = np.where(explored, self.share / np.maximum(pool, 1), 1.0 - self.share)
        return np.where(pool > 0, p, 1.0)

    def distribution(self, ranked: np.ndarray, k: int) -> np.ndarray:
        """(k slots x len(ranked) candidates): P(candidate at slot); each row sums to 1."""
        k = min(k, len(ranked))
        out = np.zeros((k, len(ranked)))
        pool = self.pool_of(ranked, k)
        keep = 1.0 - self.share if len(pool) else 1.0
        out[np.arange(k), np.arange(k)] = keep
        if len(pool):
            out[:, k : k + len(pool)] = self.share / len(pool)
        return out


def bernoulli_ts_distribution(
    alpha: np.ndarray, beta: np.ndarray, k: int, n_sim: int = 100_000, seed: int = 0
) -> np.ndarray:
    """(actions x k) P(action at slot) of Bernoulli Thompson sampling from Beta(alpha, beta):
    each draw ranks the actions by a sampled click rate (Monte Carlo, as obp computes it)."""
    rng = np.random.default_rng(seed)
    counts = np.zeros((len(alpha), k))
    for lo in range(0, n_sim, 10_000):
        theta = rng.beta(alpha, beta, size=(min(10_000, n_sim - lo), len(alpha)))
        top = np.argsort(-theta, axis=1)[:, :k]
        for j in range(k):
            counts[:, j] += np.bincount(top[:, j], minlength=len(alpha))
    return counts / n_sim
