"""Composites built from models: the two-stage ranker (retrievers' candidates ordered by a
learned ranker), the LLM rerank over a base model, and the content/CF hybrid. Each tunes its
parts itself (``tune_on``, ``eval.tuning.Composite``)."""

from __future__ import annotations

from llmrec.ranking.hybrid import Hybrid, HybridConfig
from llmrec.ranking.llm_rerank import LLMRerank, LLMRerankConfig
from llmrec.ranking.ranker import Ranker, RankerConfig

__all__ = ["Hybrid", "HybridConfig", "LLMRerank", "LLMRerankConfig", "Ranker", "RankerConfig"]
