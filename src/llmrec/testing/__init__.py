"""Test kit shipped with the package: fixtures with known answers and the model contract."""

from __future__ import annotations

from llmrec.testing.contracts import RecommenderContract
from llmrec.testing.fixtures import FAST_RANKER, block_dataset, tiny_dataset

__all__ = ["FAST_RANKER", "RecommenderContract", "block_dataset", "tiny_dataset"]
