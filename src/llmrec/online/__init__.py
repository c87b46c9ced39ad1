"""Exploration: bandit policies over ranked candidates, with the propensity of every shown item."""

from __future__ import annotations

from llmrec.online.policies import (
    EpsilonGreedySlate,
    Slate,
    bernoulli_ts_distribution,
)

__all__ = ["EpsilonGreedySlate", "Slate", "bernoulli_ts_distribution"]
