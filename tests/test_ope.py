"""Off-policy estimators on a synthetic bandit with a known value; exploring slate policies;
the Open Bandit Dataset's logged policies estimated from each other's logs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, softmax

from llmrec.errors import DataError
from llmrec.eval.ope import LoggedFeedback, estimate, on_policy
from llmrec.online.policies import EpsilonGreedySlate, bernoulli_ts_distribution

N_ACTIONS, N_SLOTS, DIM = 5, 2, 3


class Synthetic:
    """Contexts x ~ N(0, I); click probability q(x, a, slot) known; logging and target
    policies are softmax policies of x, different per slot."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.theta = rng.normal(size=(DIM, N_ACTIONS))
        self.slot_bias = np.array([0.0, -0.7])
        self.logging_w = rng.normal(size=(DIM, N_ACTIONS)) * 0.5
        self.target_w = rng.normal(size=(DIM, N_ACTIONS)) * 1.5

    def q(self, x: np.ndarray) -> np.ndarray:  # (n, actions, slots)
        return expit((x @ self.theta)[:, :, None] - 1.0 + self.slot_bias[None, None, :])

    def dist(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        p = softmax(x @ w, axis=1)
        return np.repeat(p[:, :, None], N_SLOTS, axis=2)

    def true_value(self) -> float:
        x = np.random.default_rng(99).normal(size=(400_000, DIM))
        return float((self.dist(x, self.target_w) * self.q(x)).sum(axis=1).mean())

    def log(self, n: int, rng: np.random.Generator) -> tuple[LoggedFeedback, np.ndarray]:
        x = rng.normal(size=(n, DIM))
        slot = rng.integers(0, N_SLOTS, n)
        pb = self.dist(x, self.logging_w)[np.arange(n), :, slot]
        action = (pb.cumsum(axis=1) > rng.random(n)[:, None]).argmax(axis=1)
        reward = (rng.random(n) < self.q(x)[np.arange(n), action, slot]).astype(float)
        return LoggedFeedback(action, slot, reward, pb[np.arange(n), action]), x


@pytest.fixture(scope="module")
def problem() -> Synthetic:
    return Synthetic()


@pytest.fixture(scope="module")
def replications(problem: Synthetic) -> dict[str, np.ndarray]:
    """300 logs of 1000 impressions: every estimator's value on each."""
    rng = np.random.default_rng(7)
    out: dict[str, list[float]] = {"ips": [], "snips": [], "dr": [], "dr-bad": []}
    for _ in range(300):
        log, x = problem.log(1000, rng)
        target = problem.dist(x, problem.target_w)
        good = estimate(log, target, problem.q(x), n_boot=1)
        bad = estimate(log, target, np.full(target.shape, 0.5), ("dr",), n_boot=1)  # wrong q̂
        for name in ("ips", "snips", "dr"):
            out[name].append(good[name].value)
        out["dr-bad"].append(bad["dr"].value)
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.parametrize("name", ["ips", "dr", "dr-bad", "snips"])
def test_estimators_are_unbiased_on_a_known_problem(
    problem: Synthetic, replications: dict[str, np.ndarray], name: str
) -> None:
    truth = problem.true_value()
    values = replications[name]
    se = values.std() / np.sqrt(len(values))
    # IPS and DR (whatever q̂) are unbiased; SNIPS's bias is O(1/n), far below 4 SE here
    assert abs(values.mean() - truth) < 4 * se, (values.mean(), truth, se)


def test_a_good_reward_model_lowers_variance(replications: dict[str, np.ndarray]) -> None:
    assert replications["dr"].std() < 0.9 * replications["ips"].std()


def test_intervals_cover_the_true_value(problem: Synthetic) -> None:
    rng = np.random.default_rng(11)
    truth = problem.true_value()
    covered = {"ips": 0, "snips": 0, "dr": 0}
    reps = 120
    for r in range(reps):
        log, x = problem.log(800, rng)
        est = estimate(log, problem.dist(x, problem.target_w), problem.q(x), n_boot=300, seed=r)
        for name, e in est.items():
            covered[name] += e.covers(truth)
    for name, c in covered.items():
        assert c / reps >= 0.85, (name, c / reps)  # nominal 95%


def test_on_policy_and_logging_policy_estimates() -> None:
    rng = np.random.default_rng(3)
    n = 500
    log = LoggedFeedback(
        rng.integers(0, 4, n), np.zeros(n, np.int64), rng.random(n) < 0.3, np.full(n, 0.25)
    )
    own = np.full((n, 4, 1), 0.25)  # the logging policy itself: every weight is 1
    est = estimate(log, own, np.zeros((n, 4, 1)))
    mean = on_policy(log)
    for e in est.values():
        assert e.value == pytest.approx(mean.value)
    assert mean.low < mean.value < mean.high


def test_estimate_rejects_bad_input() -> None:
    log = LoggedFeedback(np.array([0, 1]), np.array([0, 0]), np.array([1.0, 0.0]), np.ones(2) / 2)
    with pytest.raises(DataError, match="sum to 1"):
        estimate(log, np.full((2, 2, 1), 0.4))
    with pytest.raises(DataError, match="impressions=2"):
        estimate(log, np.full((3, 2, 1), 0.5))
    with pytest.raises(DataError, match="estimated_rewards"):
        estimate(log, np.full((2, 2, 1), 0.5), None, ("dr",))
    with pytest.raises(DataError, match="full action_dist"):
        estimate(log, np.ones(2), None, ("dr",))
    with pytest.raises(DataError, match="unknown estimator"):
        estimate(log, np.full((2, 2, 1), 0.5), None, ("magic",))
    with pytest.raises(DataError, match="pscore"):
        LoggedFeedback(np.array([0]), np.array([0]), np.array([1.0]), np.array([0.0]))


# --- exploring slates ------------------------------------------------------------------
def test_share_zero_is_the_ranker() -> None:
    ranked = np.array([7, 3, 9, 1, 4, 8, 2, 0, 5, 6])
    slate = EpsilonGreedySlate(0.0, pool=5).choose(ranked, 4, np.random.default_rng(0))
    assert slate.items.tolist() == [7, 3, 9, 1]
    assert slate.propensities.tolist() == [1.0] * 4 and not slate.explored.any()


def test_slate_propensities_match_how_often_items_are_shown() -> None:
    policy, k = EpsilonGreedySlate(0.3, pool=6), 4
    ranked = np.arange(12)
    dist = policy.distribution(ranked, k)
    np.testing.assert_allclose(dist.sum(axis=1), 1.0)  # each slot: a distribution
    rng = np.random.default_rng(5)
    counts = np.zeros_like(dist)
    for _ in range(20_000):
        s = policy.choose(ranked, k, rng)
        assert len(set(s.items.tolist())) == k  # never the same item twice
        counts[np.arange(k), s.items] += 1
        np.testing.assert_allclose(s.propensities, dist[np.arange(k), s.items])  # as logged
        np.testing.assert_allclose(
            policy.propensity(s.explored, np.full(k, s.pool)), s.propensities
        )
    np.testing.assert_allclose(counts / 20_000, dist, atol=0.01)
    assert dist[0, 0] == pytest.approx(0.7) and dist[0, 4] == pytest.approx(0.05)


def test_no_exploration_without_enough_candidates_below_the_list() -> None:
    slate = EpsilonGreedySlate(0.5, pool=10).choose(np.arange(6), 4, np.random.default_rng(0))
    assert slate.items.tolist() == [0, 1, 2, 3] and slate.pool == 0
    assert slate.propensities.tolist() == [1.0] * 4
    with pytest.raises(ValueError, match="share"):
        EpsilonGreedySlate(1.5)


def test_bernoulli_ts_distribution() -> None:
    alpha, beta = np.array([900.0, 10.0, 10.0, 1.0]), np.array([100.0, 90.0, 90.0, 99.0])
    d = bernoulli_ts_distribution(alpha, beta, 3, n_sim=20_000)
    np.testing.assert_allclose(d.sum(axis=0), 1.0)  # one item per slot
    assert d[0, 0] > 0.99 and d[3, 0] < 0.01  # the item with rate 0.9 leads
    assert d[1, 1] == pytest.approx(d[2, 1], abs=0.03)  # same prior, same chance


# --- the Open Bandit Dataset ---------------------------------------------------------------
@pytest.fixture(scope="module")
def obd(real_settings):  # type: ignore[no-untyped-def]
    from llmrec.data import dataset as store
    from llmrec.data.fetch import fetch

    s = real_settings
    fetch("obd", s.datasets_dir, s.cache_dir / "wheels")
    ds = store.load(s.datasets_dir, "obd")
    if "bts_prior" not in ds.extra:  # fetched before the prior was kept
        fetch("obd", s.datasets_dir, s.cache_dir / "wheels", force=True)
        ds = store.load(s.datasets_dir, "obd")
    return ds


def test_obd_logged_policies_estimated_from_each_other(obd) -> None:  # type: ignore[no-untyped-def]
    from llmrec.online.logged import bts_distribution, obd_logs, uniform_distribution

    logs = obd_logs(obd)
    rand, bts = logs["random", "men"], logs["bts", "men"]
    # the random policy on its own log: weights are 1, IPS is the on-policy value exactly
    own = estimate(rand.feedback, uniform_distribution(len(rand), rand.n_actions), None, ("ips",))
    assert own["ips"].value == pytest.approx(on_policy(rand.feedback).value)
    # BTS (from its shipped prior) estimated on random logs vs BTS's own click rate
    dist = bts_distribution(obd, "men", n_sim=20_000)
    target = np.broadcast_to(dist, (len(rand), *dist.shape))
    est = estimate(rand.feedback, np.ascontiguousarray(target), None, ("ips", "snips"))
    truth = on_policy(bts.feedback)
    for e in est.values():  # the two intervals overlap
        assert e.low <= truth.high and truth.low <= e.high, (e, truth)
