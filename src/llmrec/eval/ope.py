"""Off-policy evaluation: the value of a policy estimated from another policy's logged feedback.

Logged feedback is a list of impressions: the action (item) a logging policy showed at a slate
position, the reward (click) it earned and the logging policy's propensity of that action at
that position. A policy to evaluate gives ``action_dist`` (impressions x actions x positions):
the probability it would show each action at each position in the impression's context. The
value is the expected reward per impression (Open Bandit Pipeline's convention), so on-policy
value = mean reward of the policy's own log.

Estimators (all per-impression sample means or ratios of them):
- IPS: mean of w·r with w = π(a|x,pos) / π_b(a|x,pos): unbiased when π_b > 0 wherever π > 0.
- SNIPS: Σ w·r / Σ w: biased O(1/n), lower variance, never outside the reward's range.
- DR: mean of Σ_a π(a|x,pos) q̂(x,a,pos) + w·(r − q̂(x,a_t,pos)): unbiased whatever q̂ is
  (given exact propensities), lower variance the better q̂ is.
Confidence intervals: percentile bootstrap over impressions, seeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmrec.errors import DataError

ESTIMATORS = ("ips", "snips", "dr")


@dataclass(frozen=True)
class LoggedFeedback:
    action: np.ndarray  # (n,) int: the item shown
    position: np.ndarray  # (n,) int: its slate position (0 when one item is shown)
    reward: np.ndarray  # (n,) float
    pscore: np.ndarray  # (n,) the logging policy's probability of that action at that position

    def __post_init__(self) -> None:
        n = len(self.action)
        for name in ("position", "reward", "pscore"):
            if len(getattr(self, name)) != n:
                raise DataError(
                    f"logged feedback: {name} has {len(getattr(self, name))} rows, action has {n}"
                )
        if n and not (np.all(self.pscore > 0) and np.all(self.pscore <= 1)):
            raise DataError("logged feedback: pscore must be in (0, 1] for every impression")

    def __len__(self) -> int:
        return len(self.action)

    def subset(self, rows: np.ndarray) -> LoggedFeedback:
        return LoggedFeedback(
            self.action[rows], self.position[rows], self.reward[rows], self.pscore[rows]
        )


@dataclass(frozen=True)
class Estimate:
    estimator: str
    value: float
    low: float  # confidence interval
    high: float
    hits: int  # rewarded impressions the target policy could have shown (w > 0, r > 0): with
    # only a few, the bootstrap interval understates the uncertainty (0 hits: [0, 0])

    def covers(self, v: float) -> bool:
        return self.low <= v <= self.high

    def as_dict(self) -> dict[str, float | str]:
        return {
            "estimator": self.estimator,
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "hits": self.hits,
        }


def on_policy(
    log: LoggedFeedback, alpha: float = 0.05, n_boot: int = 2000, seed: int = 0
) -> Estimate:
    """A policy's value from its own log: the mean reward, with a bootstrap interval."""
    r = log.reward.astype(float)
    return _estimate("on-policy", r, np.ones_like(r), alpha, n_boot, seed, int((r > 0).sum()))


def estimate(
    log: LoggedFeedback,
    action_dist: np.ndarray,
    estimated_rewards: np.ndarray | None = None,
    estimators: tuple[str, ...] = ESTIMATORS,
    alpha: float = 0.05,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Estimate]:
    """The value of the policy giving ``action_dist`` (n x actions x positions) from ``log``.

    ``action_dist`` may instead be (n,): the policy's probability of each logged action at
    its position, which is all IPS and SNIPS need (DR needs the full distribution).
    ``estimated_rewards`` (n x actions x positions, a reward model's q̂) is needed for DR only;
    fit it on other impressions than ``log`` (cross-fitting) or DR's interval is too narrow.
    """
    n = len(log)
    unknown = sorted(set(estimators) - set(ESTIMATORS))
    if unknown:
        raise DataError(f"unknown estimator {unknown[0]!r}: choose from {', '.join(ESTIMATORS)}")
    rows = np.arange(n)
    if action_dist.shape == (n,):
        target = action_dist
        if "dr" in estimators:
            raise DataError("dr needs the full action_dist (impressions, actions, positions)")
    elif action_dist.ndim == 3 and action_dist.shape[0] == n:
        if np.any(np.abs(action_dist.sum(axis=1) - 1) > 1e-6):
            raise DataError("action_dist: the probabilities at each position must sum to 1")
        target = action_dist[rows, log.action, log.position]
    else:
        raise DataError(
            f"action_dist must be (impressions={n}, actions, positions) or "
            f"({n},), got {action_dist.shape}"
        )
    w = target / log.pscore
    r = log.reward.astype(float)
    hits = int(((w > 0) & (r > 0)).sum())
    out: dict[str, Estimate] = {}
    if "ips" in estimators:
        out["ips"] = _estimate("ips", w * r, np.ones(n), alpha, n_boot, seed, hits)
    if "snips" in estimators:
        out["snips"] = _estimate("snips", w * r, w, alpha, n_boot, seed, hits)
    if "dr" in estimators:
        if estimated_rewards is None or estimated_rewards.shape != action_dist.shape:
            raise DataError("dr needs estimated_rewards with the shape of action_dist")
        q = estimated_rewards
        direct = np.einsum("nap,nap->np", action_dist, q)[rows, log.position]
        terms = direct + w * (r - q[rows, log.action, log.position])
        out["dr"] = _estimate("dr", terms, np.ones(n), alpha, n_boot, seed, hits)
    return out


def _estimate(
    name: str, num: np.ndarray, den: np.ndarray, alpha: float, n_boot: int, seed: int, hits: int
) -> Estimate:
    """Σ num / Σ den and its percentile-bootstrap interval (resampling impressions)."""
    n = len(num)
    if n == 0:
        raise DataError("no logged impressions to estimate from")
    value = float(num.sum() / den.sum()) if den.sum() > 0 else 0.0
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    chunk = max(1, 2_000_000 // n)  # bounded memory: chunk x n indices at a time
    for lo in range(0, n_boot, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_boot - lo), n))
        d = den[idx].sum(axis=1)
        boots[lo : lo + len(idx)] = np.divide(
            num[idx].sum(axis=1), d, out=np.zeros(len(idx)), where=d > 0
        )
    low, high = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return Estimate(name, value, float(low), float(high), hits)
