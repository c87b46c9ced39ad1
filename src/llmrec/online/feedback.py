"""From an exploring service's impressions and the events that followed to off-policy values.

The service logs, per shown item, its slot, its rank in the ranker's list and the probability
of showing that rank at that slot (``EpsilonGreedySlate``). An impression's reward is 1 when the
user acted on the item (any event but ``view`` and ``dislike``) within ``horizon`` seconds
after it was shown. Actions are ranks, so any slot policy over the ranker's list, e.g. another
exploration share, or none (the ranker alone), can be evaluated from the logs.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from llmrec.data import columns as C
from llmrec.errors import DataError
from llmrec.eval.ope import Estimate, LoggedFeedback, estimate
from llmrec.online.policies import EpsilonGreedySlate

NOT_REWARDS = ("view", "dislike")
POLICY = "epsilon-greedy-slate"
RANKED = "ranked"  # a list shown as ranked (logged for A/B tests): not for off-policy values


def impression_rows(
    impression_id: str,
    user_id: str,
    shown: list[Any],
    policy: EpsilonGreedySlate | None,
    model_version: str,
) -> list[dict[str, Any]]:
    """Store rows for a served slate (``shown``: items with rank, propensity, explored when
    ``policy`` explores; with no policy, e.g. an A/B test, the list as ranked)."""
    now = int(time.time())
    return [
        {
            "impression_id": impression_id,
            "user_id": user_id,
            C.ITEM_ID: r.item_id,
            "position": j,
            "rank": j if policy is None else r.rank,
            "propensity": 1.0 if policy is None else r.propensity,
            "explored": False if policy is None else r.explored,
            "policy": RANKED if policy is None else POLICY,
            "share": 0.0 if policy is None else policy.share,
            "pool": 0 if policy is None else r.pool,
            "model_version": model_version,
            C.TIMESTAMP: now,
        }
        for j, r in enumerate(shown)
    ]


def rewards(impressions: pd.DataFrame, events: pd.DataFrame, horizon: int = 3600) -> np.ndarray:
    """1.0 where the user acted on the shown item within ``horizon`` seconds, else 0.0."""
    acts = events[~events[C.EVENT].isin(NOT_REWARDS)][[C.USER_ID, C.ITEM_ID, C.TIMESTAMP]]
    imp = impressions[["seq", C.USER_ID, C.ITEM_ID, C.TIMESTAMP]]
    pairs = imp.merge(acts, on=[C.USER_ID, C.ITEM_ID], suffixes=("", "_act"))
    delay = pairs[f"{C.TIMESTAMP}_act"] - pairs[C.TIMESTAMP]
    hit = set(pairs.loc[(delay >= 0) & (delay <= horizon), "seq"])
    return impressions["seq"].isin(hit).to_numpy(float)


def exploring(impressions: pd.DataFrame) -> pd.DataFrame:
    """The impressions an exploring service logged (not the lists an A/B test logs as
    ranked)."""
    return impressions[impressions["policy"] == POLICY]


def logged_feedback(
    impressions: pd.DataFrame, events: pd.DataFrame, horizon: int = 3600
) -> LoggedFeedback:
    """Logged impressions as ``LoggedFeedback``: actions are ranks in the ranker's list
    (``exploring(impressions)``: lists logged as ranked carry no propensities to use)."""
    if impressions.empty:
        raise DataError("no impressions logged: serve with --explore SHARE to log them")
    return LoggedFeedback(
        impressions["rank"].to_numpy(np.int64),
        impressions["position"].to_numpy(np.int64),
        rewards(impressions, events, horizon),
        impressions["propensity"].to_numpy(float),
    )


def share_values(
    impressions: pd.DataFrame,
    events: pd.DataFrame,
    shares: list[float],
    horizon: int = 3600,
    seed: int = 0,
) -> dict[float, dict[str, Estimate]]:
    """IPS and SNIPS values of exploring with each of ``shares`` (0: the ranker alone), from
    the impressions an exploring service logged (any share, pools as logged per request)."""
    impressions = exploring(impressions)
    fb = logged_feedback(impressions, events, horizon)
    explored = impressions["explored"].to_numpy(bool)
    pool = impressions["pool"].to_numpy(np.int64)
    return {
        share: estimate(
            fb,
            EpsilonGreedySlate(share).propensity(explored, pool),
            None,
            ("ips", "snips"),
            seed=seed,
        )
        for share in shares
    }
