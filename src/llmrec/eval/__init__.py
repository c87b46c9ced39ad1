"""Protocols, metrics, tuning on validation and reports: the same for every model."""

from __future__ import annotations

from llmrec.data.splits import Split, Stage
from llmrec.eval.protocols import PROTOCOLS, cold_items, cold_users, loo, make_split

__all__ = ["PROTOCOLS", "Split", "Stage", "cold_items", "cold_users", "loo", "make_split"]
